from clipcurate.schemas.records import CANDIDATE, DOWNLOADED, FINAL, REJECT, SCHEMA_VERSION, SchemaError
from clipcurate.schemas.status import OK, STATUSES
from clipcurate.schemas.uid import make_uid, normalize_url, seeded_int, seeded_uniform, shard_of

__all__ = ["CANDIDATE", "DOWNLOADED", "FINAL", "REJECT", "SCHEMA_VERSION", "SchemaError", "OK",
           "STATUSES", "make_uid", "normalize_url", "seeded_int", "seeded_uniform", "shard_of"]
