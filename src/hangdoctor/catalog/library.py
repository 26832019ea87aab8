"""What the static scan knows about library APIs, beyond which calls block.

The rules say which callables block (`Rule.calls`); to see that `s.get(url)`
is `requests.Session.get`, the scan must know what type `s` has. These tables
say what a call returns when the name of the callable does not (a class
returns an instance of itself; these are the factories and methods that return
something else), which names are the same class under another module path,
and which arguments make a blocking call return at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "ALIASES",
    "CANCELLATION",
    "FILE_ANNOTATIONS",
    "NONBLOCKING_FLAGS",
    "NONBLOCKING_KEYWORDS",
    "NONBLOCKING_SETUP",
    "QUIET_METHODS",
    "RETURNS",
    "UNKNOWN_RECEIVER_RETURNS",
]

_FUTURE = "concurrent.futures.Future"
_FILE = "io.IOBase"
_PATH = "pathlib.Path"
_SA_SESSION = "sqlalchemy.orm.Session"
_SA_QUERY = "sqlalchemy.orm.Query"
_SA_ENGINE = "sqlalchemy.engine.Engine"
_SA_CONNECTION = "sqlalchemy.engine.Connection"
_MONGO_DB = "pymongo.database.Database"
_MONGO_COLLECTION = "pymongo.collection.Collection"
_MONGO_CURSOR = "pymongo.cursor.Cursor"
_BOTO_CLIENT = "botocore.client.BaseClient"
_PSYCOPG_CONN = "psycopg.Connection"
_REDIS = "redis.Redis"
# a file object handed in (a parameter annotated `TextIO`): every read or write waits for
# it. What `open()` returns is another type (`io.IOBase`): its `open()` is the finding.
FILE_OBJECT = "typing.IO"

# SQLAlchemy `Query` methods that build a query and return a new one, doing no I/O
_QUERY_BUILDERS = (
    "filter",
    "filter_by",
    "where",
    "order_by",
    "group_by",
    "having",
    "join",
    "outerjoin",
    "options",
    "limit",
    "offset",
    "distinct",
    "select_from",
    "with_entities",
    "add_columns",
    "execution_options",
    "populate_existing",
    "with_for_update",
    "yield_per",
    "params",
)
# pymongo `Cursor` methods that shape the query and return the cursor, doing no I/O
_CURSOR_BUILDERS = ("sort", "limit", "skip", "batch_size", "hint", "max_time_ms", "collation")

# callable (fully qualified) -> the type of what it returns
RETURNS: Mapping[str, str] = MappingProxyType(
    {
        "requests.session": "requests.Session",
        "socket.socket": "socket.socket",
        "socket.create_connection": "socket.socket",
        "socket.create_server": "socket.socket",
        "socket.fromfd": "socket.socket",
        "socket.socket.accept": "builtins.tuple",
        "socket.socket.dup": "socket.socket",
        "ssl.wrap_socket": "socket.socket",
        "ssl.SSLContext.wrap_socket": "socket.socket",
        "sqlite3.connect": "sqlite3.Connection",
        "sqlite3.Connection.cursor": "sqlite3.Cursor",
        "sqlite3.Connection.execute": "sqlite3.Cursor",
        "sqlite3.Cursor.execute": "sqlite3.Cursor",
        "psycopg2.connect": "psycopg2.extensions.connection",
        "psycopg2.extensions.connection.cursor": "psycopg2.extensions.cursor",
        "redis.from_url": "redis.Redis",
        "redis.Redis.from_url": "redis.Redis",
        "urllib.request.build_opener": "urllib.request.OpenerDirector",
        "concurrent.futures.ThreadPoolExecutor.submit": _FUTURE,
        "concurrent.futures.ProcessPoolExecutor.submit": _FUTURE,
        "concurrent.futures.Executor.submit": _FUTURE,
        "asyncio.run_coroutine_threadsafe": _FUTURE,
        "asyncio.get_event_loop": "asyncio.AbstractEventLoop",
        "asyncio.get_running_loop": "asyncio.AbstractEventLoop",
        "asyncio.new_event_loop": "asyncio.AbstractEventLoop",
        "asyncio.AbstractEventLoop.run_in_executor": "asyncio.Future",
        "asyncio.AbstractEventLoop.create_task": "asyncio.Task",
        "asyncio.create_task": "asyncio.Task",
        "asyncio.ensure_future": "asyncio.Future",
        "asyncio.wrap_future": "asyncio.Future",
        "threading.current_thread": "threading.Thread",
        "open": _FILE,
        "io.open": _FILE,
        "pathlib.Path.open": _FILE,
        "pathlib.Path.cwd": _PATH,
        "pathlib.Path.home": _PATH,
        "pathlib.Path.resolve": _PATH,
        "pathlib.Path.absolute": _PATH,
        "pathlib.Path.expanduser": _PATH,
        "pathlib.Path.joinpath": _PATH,
        "pathlib.Path.with_name": _PATH,
        "pathlib.Path.with_suffix": _PATH,
        "pathlib.Path.with_stem": _PATH,
        "pathlib.Path.relative_to": _PATH,
        "subprocess.Popen": "subprocess.Popen",
        "os.fdopen": _FILE,
        "io.open_code": _FILE,
        "codecs.open": _FILE,
        "urllib.request.urlopen": "http.client.HTTPResponse",
        "http.client.HTTPConnection.getresponse": "http.client.HTTPResponse",
        # boto3 / botocore: making a client reads no network; its operations do
        "boto3.client": _BOTO_CLIENT,
        "boto3.session.Session.client": _BOTO_CLIENT,
        "botocore.session.Session.create_client": _BOTO_CLIENT,
        f"{_BOTO_CLIENT}.get_waiter": "botocore.waiter.Waiter",
        # SQLAlchemy (sync): engines, connections, sessions, legacy queries
        "sqlalchemy.create_engine": _SA_ENGINE,
        "sqlalchemy.engine_from_config": _SA_ENGINE,
        f"{_SA_ENGINE}.connect": _SA_CONNECTION,
        f"{_SA_ENGINE}.begin": _SA_CONNECTION,
        # classes whose names do not look like one (lower case, all capitals)
        "sqlalchemy.orm.sessionmaker": "sqlalchemy.orm.sessionmaker",
        "smtplib.SMTP": "smtplib.SMTP",
        "ftplib.FTP": "ftplib.FTP",
        "imaplib.IMAP4": "imaplib.IMAP4",
        "poplib.POP3": "poplib.POP3",
        "sqlalchemy.orm.sessionmaker.__call__": _SA_SESSION,
        "sqlalchemy.orm.sessionmaker.begin": _SA_SESSION,
        f"{_SA_SESSION}.begin": "sqlalchemy.orm.SessionTransaction",
        f"{_SA_SESSION}.query": _SA_QUERY,
        **{f"{_SA_QUERY}.{m}": _SA_QUERY for m in _QUERY_BUILDERS},
        # psycopg 3 and psycopg2's pools, pymysql
        "psycopg.connect": _PSYCOPG_CONN,
        f"{_PSYCOPG_CONN}.connect": _PSYCOPG_CONN,
        f"{_PSYCOPG_CONN}.cursor": "psycopg.Cursor",
        f"{_PSYCOPG_CONN}.execute": "psycopg.Cursor",
        "psycopg2.pool.AbstractConnectionPool.getconn": "psycopg2.extensions.connection",
        "pymysql.connect": "pymysql.connections.Connection",
        "pymysql.connections.Connection.cursor": "pymysql.cursors.Cursor",
        # redis: helpers that return objects whose own calls wait
        f"{_REDIS}.pipeline": "redis.client.Pipeline",
        f"{_REDIS}.pubsub": "redis.client.PubSub",
        f"{_REDIS}.lock": "redis.lock.Lock",
        "redis.sentinel.Sentinel.master_for": _REDIS,
        "redis.sentinel.Sentinel.slave_for": _REDIS,
        # pymongo: client["db"]["collection"], get_database(), find() cursors
        "pymongo.MongoClient.__getitem__": _MONGO_DB,
        "pymongo.MongoClient.get_database": _MONGO_DB,
        "pymongo.MongoClient.get_default_database": _MONGO_DB,
        f"{_MONGO_DB}.__getitem__": _MONGO_COLLECTION,
        f"{_MONGO_DB}.get_collection": _MONGO_COLLECTION,
        f"{_MONGO_COLLECTION}.find": _MONGO_CURSOR,
        f"{_MONGO_COLLECTION}.aggregate": "pymongo.command_cursor.CommandCursor",
        **{f"{_MONGO_CURSOR}.{m}": _MONGO_CURSOR for m in _CURSOR_BUILDERS},
        # pika and kafka-python
        "pika.BlockingConnection.channel": "pika.adapters.blocking_connection.BlockingChannel",
        "kafka.KafkaProducer.send": "kafka.producer.future.FutureRecordMetadata",
    }
)

# methods of a type whose every method waits (`Rule.calls` "pkg.Type.*") that do no I/O:
# helpers that build an object, a URL or a callback, or return the object itself
QUIET_METHODS: frozenset[str] = frozenset(
    {
        *(
            f"{_BOTO_CLIENT}.{m}"
            for m in (
                "generate_presigned_url",
                "generate_presigned_post",
                "get_paginator",
                "get_waiter",
                "can_paginate",
                "close",
            )
        ),
        *(
            f"{_REDIS}.{m}"
            for m in (
                "pipeline",
                "pubsub",
                "lock",
                "register_script",
                "from_url",
                "from_pool",
                "get_encoder",
                "get_connection_kwargs",
                "get_retry",
                "set_retry",
                "set_response_callback",
                "__enter__",
                "__exit__",
            )
        ),
        *(
            f"urllib3.{t}.{m}"
            for t in ("PoolManager", "HTTPConnectionPool")
            for m in (
                "connection_from_url",
                "connection_from_host",
                "connection_from_context",
                "connection_from_pool_key",
                "is_same_host",
                "__enter__",
            )
        ),
        *(
            f"{t}.{m}"
            for t in (
                "pika.BlockingConnection",
                "pika.adapters.blocking_connection.BlockingChannel",
            )
            for m in (
                "add_callback_threadsafe",
                "call_later",
                "remove_timeout",
                "add_on_cancel_callback",
                "add_on_return_callback",
                "__enter__",
            )
        ),
        *(
            f"{t}.{m}"
            for t in ("ftplib.FTP", "imaplib.IMAP4", "poplib.POP3")
            for m in ("set_debuglevel", "set_pasv", "getwelcome", "__enter__")
        ),
        *(
            f"{FILE_OBJECT}.{m}"
            for m in ("fileno", "isatty", "readable", "writable", "seekable", "__enter__")
        ),
    }
)

# annotations that name an open file object: its reads and writes wait (ASYNC232)
FILE_ANNOTATIONS: frozenset[str] = frozenset(
    {
        "typing.IO",
        "typing.TextIO",
        "typing.BinaryIO",
        "io.TextIOWrapper",
        "io.BufferedReader",
        "io.BufferedWriter",
        "io.BufferedRandom",
        "io.BufferedRWPair",
        "io.FileIO",
        "_io.TextIOWrapper",
        "_io.BufferedReader",
        "_io.BufferedWriter",
        "_io.BufferedRandom",
        "_io.FileIO",
    }
)

# a method name called on an object of unknown type -> what it returns, where every
# library that has the method agrees: `.submit()` gives a future whose `.result()` blocks
UNKNOWN_RECEIVER_RETURNS: Mapping[str, str] = MappingProxyType({"submit": _FUTURE})

# another module path or name for the same class -> the name the rules use
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "requests.sessions.Session": "requests.Session",
        "requests.api.get": "requests.get",
        "requests.api.post": "requests.post",
        "requests.api.request": "requests.request",
        "concurrent.futures.thread.ThreadPoolExecutor": "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.process.ProcessPoolExecutor": "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures._base.Executor": "concurrent.futures.Executor",
        "concurrent.futures._base.Future": "concurrent.futures.Future",
        "concurrent.futures._base.wait": "concurrent.futures.wait",
        "concurrent.futures._base.as_completed": "concurrent.futures.as_completed",
        "httpx._client.Client": "httpx.Client",
        "redis.client.Redis": "redis.Redis",
        "redis.client.StrictRedis": "redis.StrictRedis",
        "redis.StrictRedis": "redis.Redis",
        "http.client.HTTPSConnection": "http.client.HTTPConnection",
        "pathlib.PosixPath": _PATH,
        "pathlib.WindowsPath": _PATH,
        "threading._RLock": "threading.RLock",
        "_thread.allocate_lock": "threading.Lock",
        "_thread.LockType": "threading.Lock",
        "multiprocessing.queues.Queue": "multiprocessing.Queue",
        "urllib3.poolmanager.PoolManager": "urllib3.PoolManager",
        "urllib3.connectionpool.HTTPConnectionPool": "urllib3.HTTPConnectionPool",
        "urllib3.HTTPSConnectionPool": "urllib3.HTTPConnectionPool",
        "urllib3.connectionpool.HTTPSConnectionPool": "urllib3.HTTPConnectionPool",
        "urllib3.connectionpool.ConnectionPool": "urllib3.HTTPConnectionPool",
        "urllib3.ProxyManager": "urllib3.PoolManager",
        "urllib3.poolmanager.ProxyManager": "urllib3.PoolManager",
        "urllib3.request.RequestMethods": "urllib3.PoolManager",
        "urllib3._request_methods.RequestMethods": "urllib3.PoolManager",
        "httpx2": "httpx",  # the maintained fork: the same API under another name
        "requests.api.put": "requests.put",
        "requests.api.patch": "requests.patch",
        "requests.api.delete": "requests.delete",
        "requests.api.head": "requests.head",
        "requests.api.options": "requests.options",
        "posixpath": "os.path",
        "ntpath": "os.path",
        "genericpath": "os.path",
        **{t: FILE_OBJECT for t in FILE_ANNOTATIONS if t != FILE_OBJECT},
        "boto3.Session": "boto3.session.Session",
        "sqlalchemy.orm.session.Session": _SA_SESSION,
        "sqlalchemy.orm.scoped_session": _SA_SESSION,  # proxies every Session method
        "sqlalchemy.orm.scoping.scoped_session": _SA_SESSION,
        "sqlalchemy.orm.session.sessionmaker": "sqlalchemy.orm.sessionmaker",
        "sqlalchemy.orm.session.SessionTransaction": "sqlalchemy.orm.SessionTransaction",
        "sqlalchemy.orm.query.Query": _SA_QUERY,
        "sqlalchemy.Engine": _SA_ENGINE,
        "sqlalchemy.engine.base.Engine": _SA_ENGINE,
        "sqlalchemy.engine.create_engine": "sqlalchemy.create_engine",
        "sqlalchemy.engine.create.create_engine": "sqlalchemy.create_engine",
        "sqlalchemy.Connection": _SA_CONNECTION,
        "sqlalchemy.engine.base.Connection": _SA_CONNECTION,
        "sqlmodel.Session": _SA_SESSION,  # a Session subclass (adds `exec`)
        "sqlmodel.orm.session.Session": _SA_SESSION,
        "sqlmodel.create_engine": "sqlalchemy.create_engine",
        "psycopg.connection.Connection": _PSYCOPG_CONN,
        "psycopg.cursor.Cursor": "psycopg.Cursor",
        "psycopg.server_cursor.ServerCursor": "psycopg.ServerCursor",
        "psycopg_pool.pool.ConnectionPool": "psycopg_pool.ConnectionPool",
        "psycopg2.pool.SimpleConnectionPool": "psycopg2.pool.AbstractConnectionPool",
        "psycopg2.pool.ThreadedConnectionPool": "psycopg2.pool.AbstractConnectionPool",
        "psycopg2._psycopg.connection": "psycopg2.extensions.connection",
        "psycopg2._psycopg.cursor": "psycopg2.extensions.cursor",
        "pymysql.Connect": "pymysql.connect",
        "pymysql.Connection": "pymysql.connections.Connection",
        "redis.RedisCluster": _REDIS,
        "redis.cluster.RedisCluster": _REDIS,
        "redis.Sentinel": "redis.sentinel.Sentinel",
        "pymongo.mongo_client.MongoClient": "pymongo.MongoClient",
        "pymongo.synchronous.mongo_client.MongoClient": "pymongo.MongoClient",
        "pymongo.synchronous.database.Database": _MONGO_DB,
        "pymongo.synchronous.collection.Collection": _MONGO_COLLECTION,
        "pymongo.synchronous.cursor.Cursor": _MONGO_CURSOR,
        "pymongo.synchronous.command_cursor.CommandCursor": "pymongo.command_cursor.CommandCursor",
        "smtplib.SMTP_SSL": "smtplib.SMTP",
        "smtplib.LMTP": "smtplib.SMTP",
        "ftplib.FTP_TLS": "ftplib.FTP",
        "imaplib.IMAP4_SSL": "imaplib.IMAP4",
        "poplib.POP3_SSL": "poplib.POP3",
        "pika.adapters.blocking_connection.BlockingConnection": "pika.BlockingConnection",
        "pika.adapters.BlockingConnection": "pika.BlockingConnection",
        "kafka.producer.KafkaProducer": "kafka.KafkaProducer",
        "kafka.producer.kafka.KafkaProducer": "kafka.KafkaProducer",
        "kafka.consumer.KafkaConsumer": "kafka.KafkaConsumer",
        "kafka.consumer.group.KafkaConsumer": "kafka.KafkaConsumer",
        "confluent_kafka.cimpl.Producer": "confluent_kafka.Producer",
        "confluent_kafka.cimpl.Consumer": "confluent_kafka.Consumer",
    }
)

# keyword argument -> the literal value that makes a blocking call return at once
# (`lock.acquire(blocking=False)`, `q.get(block=False)`, `ex.shutdown(wait=False)`,
# `t.join(timeout=0)`); a literal `False` as a positional argument counts too
NONBLOCKING_KEYWORDS: Mapping[str, object] = MappingProxyType(
    {"blocking": False, "block": False, "wait": False, "timeout": 0}
)

# exceptions whose handler catches the cancellation of a task (HD302); a bare `except:` too
CANCELLATION: frozenset[str] = frozenset(
    {
        "BaseException",
        "asyncio.CancelledError",
        "asyncio.exceptions.CancelledError",
        "concurrent.futures.CancelledError",
        "trio.Cancelled",
    }
)

# a flag among the arguments that makes the call return at once: os.waitpid(pid, os.WNOHANG)
NONBLOCKING_FLAGS: frozenset[str] = frozenset({"WNOHANG", "LOCK_NB", "O_NONBLOCK"})

# method -> argument value (None: any) after which the same object's blocking calls in the
# code around return at once: `sock.setblocking(False)`, `sock.settimeout(0)`; a future
# given a done-callback is waited for through that callback, not by `.result()`
NONBLOCKING_SETUP: Mapping[str, object] = MappingProxyType(
    {"setblocking": False, "settimeout": 0, "add_done_callback": None}
)
