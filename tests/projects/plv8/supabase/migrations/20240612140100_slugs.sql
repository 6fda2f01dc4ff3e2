-- Slugs computed in JavaScript.
create or replace function public.slugify(input text)
returns text
language plv8
immutable strict
as $$
  return input
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/(^-|-$)/g, '');
$$;

create or replace function public.profiles_set_slug()
returns trigger
language plv8
as $$
  const slugify = plv8.find_function('public.slugify');
  NEW.slug = slugify(NEW.username);
  return NEW;
$$;

create trigger profiles_set_slug
  before insert or update of username on public.profiles
  for each row execute function public.profiles_set_slug();

grant execute on function public.slugify(text) to anon, authenticated;
