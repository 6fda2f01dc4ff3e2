--
-- PostgreSQL database dump
--

\restrict 0123456789abcdefABCDEFghijklmnopqrstuvwxyzXYZ

-- Dumped from database version 17.6
-- Dumped by pg_dump version 17.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

CREATE TABLE public.notes (
    id integer NOT NULL,
    owner uuid NOT NULL,
    body text
);

--
-- Data for Name: notes; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.notes (id, owner, body) FROM stdin;
1	11111111-1111-1111-1111-111111111111	first
2	22222222-2222-2222-2222-222222222222	tab\there
3	not-a-uuid	third
4	11111111-1111-1111-1111-111111111111	\N
\.


--
-- PostgreSQL database dump complete
--

\unrestrict 0123456789abcdefABCDEFghijklmnopqrstuvwxyzXYZ

