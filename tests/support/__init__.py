"""What the out-of-process suites and bench/ need to run Threshold for real, in one place.

`environment`: which services a run needs and what happens when one is missing (skipped, or failed under
CI=true), free ports, a clean environment, polling. `storage`: throwaway PostgreSQL databases, Redis key
prefixes and the settings of a backend. `processes`: `threshold` commands, servers started and waited
for, stopped by process group, their logs in the failure message; deployments that tie them together.
`dns`: a DNS server on loopback serving the TXT records a test sets.

Importable by the tests (`tests.support`) and by bench/ (with the repository root on sys.path).
"""

from tests.support.dns import DnsServer
from tests.support.environment import IN_CI, Unavailable, clean_env, free_port, need, wait_for
from tests.support.processes import (
    CLI_TIMEOUT,
    START_TIMEOUT,
    THRESHOLD,
    Deployment,
    Process,
    RedisServer,
    Server,
    make_deployment,
    migrate,
    run_cli,
    spawn,
    start_server,
)
from tests.support.storage import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_URL,
    Backend,
    backend_env,
    create_pg_database,
    delete_redis_prefix,
    drop_pg_database,
    new_redis_prefix,
    require_redis,
)

__all__ = [
    "CLI_TIMEOUT",
    "IN_CI",
    "PG_HOST",
    "PG_PORT",
    "PG_USER",
    "REDIS_URL",
    "START_TIMEOUT",
    "THRESHOLD",
    "Backend",
    "Deployment",
    "DnsServer",
    "Process",
    "RedisServer",
    "Server",
    "Unavailable",
    "backend_env",
    "clean_env",
    "create_pg_database",
    "delete_redis_prefix",
    "drop_pg_database",
    "free_port",
    "make_deployment",
    "migrate",
    "need",
    "new_redis_prefix",
    "require_redis",
    "run_cli",
    "spawn",
    "start_server",
    "wait_for",
]
