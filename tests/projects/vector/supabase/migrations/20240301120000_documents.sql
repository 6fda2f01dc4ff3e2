-- A retrieval-augmented chat: documents with embeddings, searched through an RPC.
create extension if not exists vector with schema extensions;

create table public.documents (
  id bigserial primary key,
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  content text not null,
  embedding extensions.vector(3)
);
create index documents_owner_id_idx on public.documents (owner_id);
create index documents_embedding_idx on public.documents using hnsw (embedding extensions.vector_cosine_ops);

alter table public.documents enable row level security;
create policy "owners read their documents" on public.documents for select to authenticated
  using ((select auth.uid()) = owner_id);
create policy "owners add documents" on public.documents for insert to authenticated
  with check ((select auth.uid()) = owner_id);

create or replace function public.match_documents(query_embedding extensions.vector(3), match_count int default 5)
returns table (id bigint, content text, similarity double precision)
language sql stable
set search_path = ''
as $$
  select d.id, d.content, 1 - (d.embedding operator(extensions.<=>) query_embedding) as similarity
  from public.documents d
  order by d.embedding operator(extensions.<=>) query_embedding
  limit match_count;
$$;
