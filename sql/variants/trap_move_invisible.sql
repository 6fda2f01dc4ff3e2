-- Without the composite foreign key, a user can point an own message at another tenant's
-- conversation (conversation_id alone). The message stays in the user's organization: the
-- other tenant does not see it and it is not theirs by organization_id. A verdict rests on an
-- effect the other tenant can see: no finding.
alter table public.messages drop constraint messages_conversation_same_organization_fkey;
