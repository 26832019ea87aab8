"""HD2xx: synchronous, blocking calls made directly from async code."""

from __future__ import annotations

from hangdoctor.catalog.rule import FramePattern, Rule

_TO_THREAD = (
    "Run it off the loop with `await asyncio.to_thread(...)` (Python 3.9+) or "
    "`await loop.run_in_executor(None, ...)`"
)

_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")

# SQLAlchemy's sync ORM and Core: the calls that talk to the database. `Session.add`,
# `delete`, `expire` and `select(...)` only change or build objects in memory.
_SQLALCHEMY = (
    *(
        f"sqlalchemy.orm.Session.{m}"
        for m in (
            "execute",
            "scalar",
            "scalars",
            "commit",
            "flush",
            "get",
            "get_one",
            "refresh",
            "merge",
            "rollback",
            "close",
            "connection",
            "exec",  # sqlmodel's Session
            "__exit__",  # closes: gives the connection back with a ROLLBACK
        )
    ),
    "sqlalchemy.orm.SessionTransaction.__exit__",
    "sqlalchemy.orm.SessionTransaction.commit",
    "sqlalchemy.orm.SessionTransaction.rollback",
    *(
        f"sqlalchemy.orm.Query.{m}"
        for m in (
            "all",
            "first",
            "one",
            "one_or_none",
            "scalar",
            "count",
            "get",
            "delete",
            "update",
        )
    ),
    *(
        f"sqlalchemy.engine.Engine.{m}"
        for m in ("connect", "begin", "execute", "raw_connection", "dispose")
    ),
    *(
        f"sqlalchemy.engine.Connection.{m}"
        for m in (
            "execute",
            "exec_driver_sql",
            "scalar",
            "scalars",
            "commit",
            "rollback",
            "close",
        )
    ),
)

_PYMONGO = (
    *(
        f"pymongo.MongoClient.{m}"
        for m in ("server_info", "list_database_names", "list_databases", "drop_database")
    ),
    *(
        f"pymongo.database.Database.{m}"
        for m in (
            "command",
            "list_collection_names",
            "list_collections",
            "create_collection",
            "drop_collection",
            "validate_collection",
        )
    ),
    *(
        f"pymongo.collection.Collection.{m}"
        for m in (
            "find_one",
            "insert_one",
            "insert_many",
            "update_one",
            "update_many",
            "replace_one",
            "delete_one",
            "delete_many",
            "count_documents",
            "estimated_document_count",
            "aggregate",
            "distinct",
            "bulk_write",
            "create_index",
            "create_indexes",
            "drop_index",
            "drop_indexes",
            "drop",
            "find_one_and_delete",
            "find_one_and_replace",
            "find_one_and_update",
            "list_indexes",
            "index_information",
            "rename",
            "watch",
        )
    ),
    *(f"pymongo.cursor.Cursor.{m}" for m in ("to_list", "next", "explain", "distinct")),
    "pymongo.command_cursor.CommandCursor.to_list",
    "pymongo.command_cursor.CommandCursor.next",
)

_SMTP = tuple(
    f"smtplib.SMTP.{m}"
    for m in (
        "connect",
        "helo",
        "ehlo",
        "ehlo_or_helo_if_needed",
        "starttls",
        "login",
        "auth",
        "sendmail",
        "send_message",
        "quit",
        "noop",
        "rset",
        "verify",
        "expn",
        "docmd",
        "mail",
        "rcpt",
        "data",
        "__exit__",  # sends QUIT
    )
)

_KAFKA = (
    "kafka.KafkaProducer",  # bootstraps: connects and fetches metadata
    "kafka.KafkaConsumer",
    *(f"kafka.KafkaProducer.{m}" for m in ("send", "flush", "close", "partitions_for")),
    "kafka.producer.future.FutureRecordMetadata.get",
    *(
        f"kafka.KafkaConsumer.{m}"
        for m in (
            "poll",
            "commit",
            "close",
            "position",
            "committed",
            "end_offsets",
            "beginning_offsets",
            "offsets_for_times",
            "partitions_for_topic",
            "topics",
        )
    ),
    "confluent_kafka.Producer.flush",
    "confluent_kafka.Producer.list_topics",
    *(
        f"confluent_kafka.Consumer.{m}"
        for m in ("poll", "consume", "close", "list_topics", "committed")
    ),
)

# os.path and pathlib calls that ask the file system (ASYNC240); pure path arithmetic
# (`join`, `with_suffix`, `parent`) is not I/O
_OS_PATH = tuple(
    f"os.path.{f}"
    for f in (
        "exists",
        "lexists",
        "isfile",
        "isdir",
        "islink",
        "ismount",
        "isjunction",
        "isdevdrive",
        "getsize",
        "getmtime",
        "getatime",
        "getctime",
        "samefile",
        "sameopenfile",
        "realpath",
        "abspath",  # asks for the working directory
        "relpath",
        "expanduser",  # may ask the password database (NSS, LDAP)
    )
)
_PATH_IO = tuple(
    f"pathlib.Path.{m}"
    for m in (
        "exists",
        "is_dir",
        "is_file",
        "is_symlink",
        "is_mount",
        "is_socket",
        "is_fifo",
        "is_block_device",
        "is_char_device",
        "is_junction",
        "stat",
        "lstat",
        "iterdir",
        "glob",
        "rglob",
        "walk",
        "mkdir",
        "rmdir",
        "unlink",
        "touch",
        "rename",
        "replace",
        "chmod",
        "lchmod",
        "symlink_to",
        "hardlink_to",
        "link_to",
        "readlink",
        "owner",
        "group",
        "samefile",
        "resolve",
        "absolute",
        "expanduser",
    )
)
_OS_FILES = tuple(
    f"os.{f}"
    for f in (
        "stat",
        "lstat",
        "access",
        "listdir",
        "scandir",
        "walk",
        "remove",
        "unlink",
        "rename",
        "replace",
        "mkdir",
        "makedirs",
        "rmdir",
        "removedirs",
        "fsync",
        "fdatasync",
        "sendfile",
        "truncate",
    )
)

RULES = (
    Rule(
        code="HD201",
        name="time-sleep-in-async",
        effect="stops the whole event loop while it sleeps",
        summary="`time.sleep` is called in async code.",
        why=(
            "`time.sleep` suspends the whole thread. On the event-loop thread that is every "
            "coroutine of the process: no request is accepted or answered until it returns."
        ),
        bad="""\
async def poll():
    while not ready():
        time.sleep(1)  # the loop is frozen for a second each time
""",
        good="""\
async def poll():
    while not ready():
        await asyncio.sleep(1)  # other requests run meanwhile
""",
        fix="Use `await asyncio.sleep(seconds)` (or `await anyio.sleep(seconds)`).",
        fix_min_python="3.7",
        fix_safety="Safe in a coroutine: the pause is the same, but the loop keeps running.",
        calls=("time.sleep",),
    ),
    Rule(
        code="HD202",
        name="sync-http-client-in-async",
        effect="waits for the network on the event loop",
        summary="A synchronous HTTP client is used in async code.",
        why=(
            "requests, urllib, http.client, urllib3, httpx's sync `Client` and boto3/botocore "
            "clients wait for the network on the calling thread. From a coroutine that is the "
            "loop thread, so one "
            "slow upstream stops every request of the process for as long as it takes "
            "(forever, when no timeout is set)."
        ),
        bad="""\
@app.get("/weather")
async def weather():
    r = requests.get(UPSTREAM, timeout=30)  # blocks the loop up to 30 s
    return r.json()
""",
        good="""\
client = httpx.AsyncClient(timeout=5)

@app.get("/weather")
async def weather():
    r = await client.get(UPSTREAM)
    return r.json()
""",
        fix=(
            "Use an async client (`httpx.AsyncClient`, `aiohttp`, aioboto3/aiobotocore for AWS) "
            "with a timeout. " + _TO_THREAD + " when the sync client must stay."
        ),
        fix_min_python="3.9",
        fix_safety="Unsafe as an automatic fix: the async client's API and errors differ.",
        frames=(
            FramePattern("requests/"),
            FramePattern("urllib3/"),
            FramePattern("http/client.py"),
            FramePattern("urllib/request.py"),
            FramePattern("httpcore/_sync/"),
            FramePattern("httpx/_client.py", "Client.send"),
            FramePattern("httpx/_client.py", "Client.request"),
            FramePattern("httpx/_api.py"),
        ),
        calls=(
            *(f"requests.{v}" for v in _HTTP_VERBS),
            *(f"requests.Session.{v}" for v in (*_HTTP_VERBS, "send")),
            "urllib.request.urlopen",
            "urllib.request.OpenerDirector.open",
            "urllib3.request",
            "urllib3.PoolManager.*",  # and ProxyManager: every request goes out
            "urllib3.HTTPConnectionPool.*",
            "http.client.HTTPConnection.request",
            "http.client.HTTPConnection.getresponse",
            "http.client.HTTPConnection.connect",
            "http.client.HTTPSConnection.request",
            "http.client.HTTPSConnection.getresponse",
            *(f"httpx.{v}" for v in (*_HTTP_VERBS, "stream")),
            *(f"httpx.Client.{v}" for v in (*_HTTP_VERBS, "send", "stream", "close")),
            # boto3/botocore: every operation of a client is an HTTPS request to AWS
            "botocore.client.BaseClient.*",
            "botocore.waiter.Waiter.wait",
        ),
        methods=("urlopen", "getresponse"),
        scan_methods=("urlopen", "getresponse"),
    ),
    Rule(
        code="HD203",
        name="sync-db-or-socket-in-async",
        effect="waits for the database or the socket on the event loop",
        summary="A synchronous database driver or raw socket I/O runs in async code.",
        why=(
            "Sync database drivers and clients (sqlite3, psycopg2, psycopg 3, pymysql, "
            "SQLAlchemy's `Session`/`Connection`/`Engine`, redis, pymongo, pika, kafka-python, "
            "smtplib) and plain `socket` calls (`connect`, `recv`, `sendall`, `accept`) wait "
            "for the network or the disk on the calling thread. On the loop thread, every "
            "other request waits with them."
        ),
        bad="""\
@app.get("/users/{uid}")
async def user(uid: int):
    row = conn.execute("SELECT * FROM users WHERE id=?", (uid,)).fetchone()
    return dict(row)
""",
        good="""\
@app.get("/users/{uid}")
async def user(uid: int):
    async with pool.acquire() as conn:  # asyncpg / aiosqlite / redis.asyncio
        row = await conn.fetchrow("SELECT * FROM users WHERE id=$1", uid)
    return dict(row)
""",
        fix=(
            "Use the driver's async form (asyncpg, psycopg 3 async, aiosqlite, aiomysql, "
            "SQLAlchemy's `AsyncSession`, `redis.asyncio`, motor or pymongo's `AsyncMongoClient`, "
            "aio-pika, aiokafka, aiosmtplib, `asyncio.open_connection`). "
            + _TO_THREAD
            + " otherwise."
        ),
        fix_min_python="3.9",
        fix_safety="Unsafe as an automatic fix: connections are not thread-safe in general.",
        frames=(
            FramePattern("psycopg2/"),
            FramePattern("pymysql/"),
            FramePattern("MySQLdb/"),
            FramePattern("redis/connection.py"),
            FramePattern("redis/client.py"),
            FramePattern("redis/commands/"),
            FramePattern("sqlite3/"),
            # psycopg 3: the sync classes live apart from the async ones (`*_async.py`)
            FramePattern("psycopg/connection.py"),
            FramePattern("psycopg/cursor.py"),
            FramePattern("psycopg_pool/pool.py"),
            FramePattern("pymongo/synchronous/"),  # pymongo 4.9+; pymongo/asynchronous/ is async
            FramePattern("pymongo/network.py"),  # pymongo before 4.9: sync only
            FramePattern("pymongo/pool.py"),
            FramePattern("pika/adapters/blocking_connection.py"),
            FramePattern("kafka/"),  # kafka-python (aiokafka is `aiokafka/`)
            FramePattern("smtplib.py"),
            FramePattern("ftplib.py"),
            FramePattern("imaplib.py"),
            FramePattern("poplib.py"),
            FramePattern("socket.py", "create_connection"),
            FramePattern("socket.py", "socket.accept"),
            FramePattern("socket.py", "SocketIO.readinto"),
            FramePattern("ssl.py", "SSLSocket.recv"),
            FramePattern("ssl.py", "SSLSocket.recv_into"),
            FramePattern("ssl.py", "SSLSocket.read"),
            FramePattern("ssl.py", "SSLSocket.sendall"),
            FramePattern("ssl.py", "SSLSocket.do_handshake"),
        ),
        calls=(
            "sqlite3.connect",
            "sqlite3.Connection.execute",
            "sqlite3.Connection.executemany",
            "sqlite3.Connection.executescript",
            "sqlite3.Connection.commit",
            "sqlite3.Connection.rollback",
            "sqlite3.Cursor.execute",
            "sqlite3.Cursor.executemany",
            "sqlite3.Cursor.executescript",
            "sqlite3.Cursor.fetchone",
            "sqlite3.Cursor.fetchall",
            "sqlite3.Cursor.fetchmany",
            "psycopg2.connect",
            "psycopg2.extensions.connection.commit",
            "psycopg2.extensions.connection.rollback",
            "psycopg2.extensions.cursor.callproc",
            "psycopg2.extensions.cursor.copy_expert",
            "psycopg2.extensions.cursor.copy_from",
            "psycopg2.extensions.cursor.copy_to",
            "psycopg2.extras.execute_values",
            "psycopg2.extras.execute_batch",
            "psycopg2.pool.AbstractConnectionPool.getconn",  # may connect
            "psycopg2.extensions.cursor.execute",
            "psycopg2.extensions.cursor.executemany",
            "psycopg2.extensions.cursor.fetchone",
            "psycopg2.extensions.cursor.fetchall",
            "psycopg2.extensions.cursor.fetchmany",
            "psycopg.connect",
            *(
                f"psycopg.Connection.{m}"
                for m in ("connect", "execute", "commit", "rollback", "transaction")
            ),
            *(f"psycopg.Cursor.{m}" for m in ("execute", "executemany", "copy", "stream")),
            *(
                f"psycopg.ServerCursor.{m}"  # a named cursor fetches from the server
                for m in ("execute", "fetchone", "fetchmany", "fetchall")
            ),
            *(f"psycopg_pool.ConnectionPool.{m}" for m in ("connection", "getconn", "wait")),
            "pymysql.connect",
            *(
                f"pymysql.connections.Connection.{m}"
                for m in ("commit", "rollback", "ping", "select_db", "query")
            ),
            *(f"pymysql.cursors.Cursor.{m}" for m in ("execute", "executemany", "callproc")),
            "MySQLdb.connect",
            "mysql.connector.connect",
            *_SQLALCHEMY,
            # redis: making a client connects nothing; every command is a network round trip
            "redis.Redis.*",
            "redis.client.Pipeline.execute",
            *(
                f"redis.client.PubSub.{m}"
                for m in ("get_message", "subscribe", "psubscribe", "unsubscribe", "punsubscribe")
            ),
            *(f"redis.lock.Lock.{m}" for m in ("acquire", "release", "extend", "__enter__")),
            "redis.sentinel.Sentinel.discover_master",
            *_PYMONGO,
            "pika.BlockingConnection",  # connects
            "pika.BlockingConnection.*",
            "pika.adapters.blocking_connection.BlockingChannel.*",
            *_KAFKA,
            *_SMTP,
            "ftplib.FTP.*",
            "imaplib.IMAP4",  # connects
            "imaplib.IMAP4.*",
            "poplib.POP3",  # connects
            "poplib.POP3.*",
            "socket.create_connection",
            "socket.socket.connect",
            "socket.socket.recv",
            "socket.socket.recv_into",
            "socket.socket.recvfrom",
            "socket.socket.send",
            "socket.socket.sendall",
            "socket.socket.sendto",
            "socket.socket.accept",
            "socket.socket.connect_ex",
            "socket.socket.recvfrom_into",
            "socket.socket.recvmsg",
            "socket.socket.sendmsg",
            "socket.socket.sendfile",
        ),
        methods=(
            "recv",
            "recv_into",
            "recvfrom",
            "sendall",
            "connect",
            "accept",
            "execute",
            "executemany",
            "fetchone",
            "fetchall",
            "fetchmany",
            "commit",
        ),
        scan_methods=("recv", "recv_into", "recvfrom", "sendall"),
    ),
    Rule(
        code="HD204",
        name="subprocess-wait-in-async",
        effect="waits for a child process on the event loop",
        summary="Async code waits for a subprocess synchronously.",
        why=(
            "`subprocess.run`, `call`, `check_call`, `check_output`, `Popen.wait`, "
            "`Popen.communicate`, `os.system`, `os.spawn*(P_WAIT)`, `os.wait*` and "
            "`multiprocessing.Process.join` block until the child exits; `subprocess.Popen()`, "
            "`os.popen`, `os.posix_spawn` and `os.spawn*` fork and wait for the new program to "
            "start. On the loop thread the whole service waits for the child."
        ),
        bad="""\
@app.post("/thumbnail")
async def thumbnail(path: str):
    subprocess.run(["convert", path, "-resize", "200x200", out], check=True)
""",
        good="""\
@app.post("/thumbnail")
async def thumbnail(path: str):
    proc = await asyncio.create_subprocess_exec("convert", path, "-resize", "200x200", out)
    if await proc.wait() != 0:
        raise HTTPException(500)
""",
        fix=(
            "Use `asyncio.create_subprocess_exec` and `await proc.wait()` / "
            "`await proc.communicate()`. " + _TO_THREAD + " for code you cannot change."
        ),
        fix_min_python="3.8",
        fix_safety="Unsafe as an automatic fix: the asyncio process API differs.",
        frames=(
            FramePattern("subprocess.py", "run"),
            FramePattern("subprocess.py", "call"),
            FramePattern("subprocess.py", "check_call"),
            FramePattern("subprocess.py", "check_output"),
            FramePattern("subprocess.py", "Popen.wait"),
            FramePattern("subprocess.py", "Popen.communicate"),
            FramePattern("subprocess.py", "Popen._wait"),
            FramePattern("subprocess.py", "Popen._communicate"),
            FramePattern("subprocess.py", "getoutput"),
            FramePattern("subprocess.py", "getstatusoutput"),
        ),
        calls=(
            "subprocess.run",
            "subprocess.call",
            "subprocess.check_call",
            "subprocess.check_output",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "subprocess.Popen.wait",
            "subprocess.Popen.communicate",
            "subprocess.Popen",  # forks and waits for the exec (and `with` for the exit)
            "os.popen",
            "os.system",
            "os.posix_spawn",
            "os.posix_spawnp",
            *(f"os.spawn{v}" for v in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
            "os.waitpid",
            "os.wait",
            "os.wait3",
            "os.wait4",
            "os.waitid",
            "pty.spawn",
            "multiprocessing.Process.join",
        ),
        methods=("communicate",),
        scan_methods=("communicate",),
    ),
    Rule(
        code="HD205",
        name="blocking-file-io-in-async",
        effect="waits for the disk on the event loop",
        summary="Blocking file I/O runs in async code.",
        why=(
            "`open()`, file reads and writes, `pathlib.Path.read_text`/`write_bytes`, "
            "`os.path.exists`/`Path.stat` and the like, and `shutil` copies wait for the disk "
            "(or for a writer, on a pipe or a network file system) on the calling thread. "
            "Usually short, they become outages on slow or remote storage, large files, or "
            "FIFOs. `input()` and reads of `sys.stdin` wait for a person or a pipe."
        ),
        bad="""\
@app.get("/export")
async def export():
    with open("/mnt/share/report.csv") as f:
        return f.read()
""",
        good="""\
@app.get("/export")
async def export():
    return await asyncio.to_thread(Path("/mnt/share/report.csv").read_text)
    # or: async with aiofiles.open(...) / anyio.Path(...).read_text()
""",
        fix=(
            "Move file work off the loop: `await asyncio.to_thread(path.read_text)`, "
            "`anyio.Path`, or aiofiles. For large responses stream with `FileResponse`."
        ),
        fix_min_python="3.9",
        fix_safety="Unsafe as an automatic fix: file objects are not safe to share across threads.",
        frames=(
            FramePattern("pathlib.py", "Path.read_text"),
            FramePattern("pathlib.py", "Path.read_bytes"),
            FramePattern("pathlib.py", "Path.write_text"),
            FramePattern("pathlib.py", "Path.write_bytes"),
            FramePattern("pathlib.py", "Path.open"),
            FramePattern("pathlib/_local.py", "Path.read_text"),
            FramePattern("pathlib/_local.py", "Path.read_bytes"),
            FramePattern("pathlib/_local.py", "Path.write_text"),
            FramePattern("pathlib/_local.py", "Path.write_bytes"),
            FramePattern("pathlib/_local.py", "Path.open"),
            FramePattern("pathlib/_abc.py", "PathBase.read_text"),
            FramePattern("pathlib/_abc.py", "PathBase.read_bytes"),
            FramePattern("shutil.py"),
        ),
        calls=(
            "open",
            "io.open",
            "io.open_code",
            "os.fdopen",
            "codecs.open",
            "input",
            "getpass.getpass",
            "sys.stdin.read",
            "sys.stdin.readline",
            "sys.stdin.readlines",
            "os.read",
            "os.write",
            "os.open",
            *_OS_FILES,
            *_OS_PATH,
            *_PATH_IO,
            # a file object handed in (`f: TextIO`, `f: io.BufferedReader`)
            "typing.IO.*",
            "pathlib.Path.read_text",
            "pathlib.Path.read_bytes",
            "pathlib.Path.write_text",
            "pathlib.Path.write_bytes",
            "pathlib.Path.open",
            "shutil.copy",
            "shutil.copy2",
            "shutil.copyfile",
            "shutil.copytree",
            "shutil.move",
            "shutil.rmtree",
            "shutil.copyfileobj",
            "shutil.make_archive",
            "shutil.unpack_archive",
            "glob.glob",
            "tempfile.NamedTemporaryFile",
            "tempfile.TemporaryFile",
            "tempfile.mkstemp",
            "tempfile.mkdtemp",
        ),
        methods=("read", "readline", "readlines", "write", "read_text", "read_bytes"),
        scan_methods=("read_text", "read_bytes", "write_text", "write_bytes"),
    ),
    Rule(
        code="HD206",
        name="thread-sync-wait-in-async",
        effect="waits for another thread on the event loop",
        summary="Async code waits on a threading primitive or a thread-safe queue.",
        why=(
            "`threading.Lock.acquire`, `Event.wait`, `Condition.wait`, `Semaphore.acquire`, "
            "`Thread.join` and `queue.Queue.get`/`put` block the calling thread until another "
            "thread acts. On the loop thread nothing else runs meanwhile, and if the other "
            "thread needs the loop to make progress, it never does: a deadlock."
        ),
        bad="""\
@app.post("/jobs")
async def submit(job: Job):
    with jobs_lock:  # held by a worker thread for seconds
        jobs.append(job)
""",
        good="""\
jobs_lock = asyncio.Lock()

@app.post("/jobs")
async def submit(job: Job):
    async with jobs_lock:
        jobs.append(job)
""",
        fix=(
            "Use asyncio's primitives (`asyncio.Lock`, `Event`, `Queue`) between coroutines. "
            "To wait for a thread, wrap the blocking wait: "
            "`await asyncio.to_thread(event.wait, timeout)` or use `janus`-style queues."
        ),
        fix_min_python="3.9",
        fix_safety="Unsafe as an automatic fix: asyncio primitives are not thread-safe.",
        frames=(
            FramePattern("threading.py", "Event.wait"),
            FramePattern("threading.py", "Condition.wait"),
            FramePattern("threading.py", "Condition.wait_for"),
            FramePattern("threading.py", "Semaphore.acquire"),
            FramePattern("threading.py", "BoundedSemaphore.acquire"),
            FramePattern("threading.py", "Barrier.wait"),
            FramePattern("threading.py", "Thread.join"),
            FramePattern("threading.py", "Thread._wait_for_tstate_lock"),
            FramePattern("queue.py", "Queue.get"),
            FramePattern("queue.py", "Queue.put"),
            FramePattern("queue.py", "Queue.join"),
            FramePattern("multiprocessing/"),
        ),
        calls=(
            "threading.Lock.acquire",
            "threading.RLock.acquire",
            "threading.Event.wait",
            "threading.Condition.wait",
            "threading.Condition.wait_for",
            "threading.Condition.acquire",
            "threading.Semaphore.acquire",
            "threading.BoundedSemaphore.acquire",
            "threading.Barrier.wait",
            "threading.Thread.join",
            # `with lock:` acquires
            "threading.Lock.__enter__",
            "threading.RLock.__enter__",
            "threading.Condition.__enter__",
            "threading.Semaphore.__enter__",
            "threading.BoundedSemaphore.__enter__",
            "queue.Queue.get",
            "queue.Queue.put",
            "queue.Queue.join",
            "queue.LifoQueue.get",
            "queue.LifoQueue.put",
            "queue.PriorityQueue.get",
            "queue.PriorityQueue.put",
            "queue.SimpleQueue.get",
            "multiprocessing.Queue.get",
            "multiprocessing.Queue.put",
        ),
        methods=("acquire", "wait", "wait_for", "join", "get", "put"),
        # an unawaited `.acquire()` in a coroutine is a thread lock (asyncio's is awaited)
        scan_methods=("acquire",),
    ),
    Rule(
        code="HD207",
        name="sync-dns-in-async",
        effect="waits for DNS on the event loop",
        summary="Synchronous DNS resolution runs in async code.",
        why=(
            "`socket.getaddrinfo`, `gethostbyname` and friends ask the system resolver and "
            "wait for it on the calling thread; a slow or unreachable DNS server stalls the "
            "loop for the resolver's whole timeout (often 5 s per attempt)."
        ),
        bad="""\
@app.get("/resolve")
async def resolve(host: str):
    return socket.gethostbyname(host)
""",
        good="""\
@app.get("/resolve")
async def resolve(host: str):
    infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    return infos[0][4][0]
""",
        fix="Use `await loop.getaddrinfo(...)` (it runs in the default executor) or aiodns.",
        fix_min_python="3.7",
        fix_safety="Unsafe as an automatic fix: the result shape differs.",
        frames=(
            FramePattern("socket.py", "getaddrinfo"),
            FramePattern("socket.py", "getfqdn"),
        ),
        calls=(
            "socket.getaddrinfo",
            "socket.gethostbyname",
            "socket.gethostbyname_ex",
            "socket.gethostbyaddr",
            "socket.getnameinfo",
            "socket.getfqdn",
        ),
        methods=("getaddrinfo", "gethostbyname"),
        scan_methods=("gethostbyname",),
    ),
)
