import collections
from pytest_rlscheck import fuzz
def test_x(rls):
    rls.execute("alter table conversations drop constraint conversations_metadata_language_length")
    rls.execute("alter table conversations add constraint language_bytes check (not (metadata ? 'language') or (jsonb_typeof(metadata -> 'language') = 'string' and octet_length(metadata ->> 'language') <= 10))")
    kinds = collections.Counter()
    orig = fuzz._Target.attempt
    def spy(self, payload):
        if isinstance(payload, dict):
            lang = payload.get("language")
            if isinstance(lang, str): kinds["lang str"] += 1
            if isinstance(lang, str) and len(lang) <= 10 < len(lang.encode()): kinds["HIT"] += 1
            kinds["dict"] += 1
        else: kinds["other"] += 1
        return orig(self, payload)
    fuzz._Target.attempt = spy
    try:
        rls.fuzz_constraint("conversations", "metadata")
    finally:
        fuzz._Target.attempt = orig
    print(kinds)
