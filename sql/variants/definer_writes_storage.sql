-- An RPC that deletes a stored file by bucket and name, never asking who is calling: any
-- caller can delete anyone's file. Its parameters are a bucket and a name, not ids the sweep
-- can fill with the other tenant's, so it is not called: the catalog's verdict stands.
-- expect: definer-exposed public.remove_file(p_bucket text, p_name text)
-- severity: error definer-exposed public.remove_file(p_bucket text, p_name text)
create function public.remove_file(p_bucket text, p_name text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from storage.objects o where o.bucket_id = p_bucket and o.name = p_name;
end
$$;
