-- The classic: a public view over auth.users (RLS on, no grants to the API roles) that
-- runs with its owner's rights and so hands every user's email to anyone.
-- expect: view-bypasses-rls public.user_emails
create view public.user_emails as select id, email from auth.users;
