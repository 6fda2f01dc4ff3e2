-- DELETE is still granted to authenticated, but its policy is gone: RLS refuses every DELETE.
-- Without the config saying DELETE is wanted, that is a grant wider than the policies (info).
-- expect: command-uncovered public.messages
-- severity: info command-uncovered public.messages
drop policy messages_delete on public.messages;
