-- Unqualified: works only because the previous file's search_path did not carry over.
create view todos_open with (security_invoker = true) as select id, title from todos where not done;
