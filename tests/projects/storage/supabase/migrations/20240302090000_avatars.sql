-- Avatars: a public bucket, each user writes only in their own folder.
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);

create policy "anyone reads avatars" on storage.objects for select
  using (bucket_id = 'avatars');
create policy "users upload to their folder" on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy "users delete their avatars" on storage.objects for delete to authenticated
  using (bucket_id = 'avatars' and owner = (select auth.uid()));
