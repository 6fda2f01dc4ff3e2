-- DELETE is still granted to authenticated, but its policy is gone.
-- expect: command-uncovered public.messages
drop policy messages_delete on public.messages;
