insert into auth.users (id, email) values ('11111111-1111-1111-1111-111111111111', 'alice@example.com');
