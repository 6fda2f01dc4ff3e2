-- Call the order-created edge function after each insert.
create or replace function public.notify_order_created()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform net.http_post(
    url := 'https://abcdefghijklmnopqrst.supabase.co/functions/v1/order-created',
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || coalesce(current_setting('app.settings.service_role_key', true), 'dev-key')
    ),
    body := jsonb_build_object('type', 'INSERT', 'table', TG_TABLE_NAME, 'record', to_jsonb(new)),
    timeout_milliseconds := 3000
  );
  return new;
end;
$$;

create trigger on_order_created
  after insert on public.orders
  for each row execute function public.notify_order_created();

-- A nightly ping, straight from SQL.
create or replace function public.ping_status_page()
returns bigint
language sql
as $$
  select net.http_get(
    url := 'https://status.example.com/ping',
    params := jsonb_build_object('source', 'orders db')
  );
$$;
