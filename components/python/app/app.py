"""A Spin HTTP component in Python (spin-sdk 3.4, componentize-py): one
route per Spin capability wasmhost serves, for the end-to-end tests.

GET /py/hello     -> "Hello from Python" (also GET /, for the benchmarks)
GET /py/kv        -> the `default` store's counter, incremented
GET /py/vars      -> the component variable `greeting`
GET /py/sqlite    -> inserts a row into `default` (spin:sqlite@3.0.0),
                     answers the row count and the new row's id
GET /py/outbound  -> the body of GET {{ upstream }}/ (outbound HTTP)
GET /py/redis     -> SET then GET a key on {{ redis_address }}
GET /py/llm       -> an inference on `llama2-chat`, or the error's text
GET /py/config    -> wasi:config: `greeting`, then a name that is no
                     variable's (none, as Spin answers)
GET /py/wasi-kv   -> wasi:keyvalue on `default`: increment twice, a CAS,
                     and a paged list-keys (refused, as in Spin)
"""

from spin_sdk import http, key_value, llm, redis, variables
from spin_sdk.http import Request, Response, send
from spin_sdk.wit.types import Err

# spin:sqlite/sqlite@3.0.0 straight from the generated bindings:
# spin-sdk 3.4.1's `spin_sdk.sqlite` wrapper imports a module name
# (`spin_sdk.wit.imports.sqlite`) that componentize-py 0.17 does not
# generate (it names it `fermyon_spin_sqlite`).
from spin_sdk.wit.imports.spin_sqlite_sqlite import Connection, Value_Integer, Value_Text
from spin_sdk.wit.imports import atomics, wasi_config_store, wasi_keyvalue_store


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?")[0]
        try:
            if path == "/" or path.endswith("/hello"):
                return text(200, "Hello from Python")
            if path.endswith("/kv"):
                with key_value.open_default() as store:
                    current = store.get("py-counter")
                    count = int(current.decode()) + 1 if current else 1
                    store.set("py-counter", bytes(str(count), "utf-8"))
                return text(200, str(count))
            if path.endswith("/vars"):
                return text(200, variables.get("greeting"))
            if path.endswith("/sqlite"):
                with Connection.open("default") as db:
                    db.execute("CREATE TABLE IF NOT EXISTS py (id INTEGER PRIMARY KEY, note TEXT)", [])
                    db.execute("INSERT INTO py (note) VALUES (?)", [Value_Text("from python")])
                    rowid = db.last_insert_rowid()
                    result = db.execute("SELECT COUNT(*) FROM py WHERE note = ?", [Value_Text("from python")])
                    count = result.rows[0].values[0]
                    assert isinstance(count, Value_Integer)
                return text(200, f"{count.value} rows, last id {rowid}")
            if path.endswith("/outbound"):
                upstream = variables.get("upstream")
                response = send(Request("GET", upstream + "/", {}, None))
                return text(response.status, (response.body or b"").decode())
            if path.endswith("/redis"):
                with redis.open(variables.get("redis_address")) as db:
                    db.set("py-key", b"from python")
                    value = db.get("py-key")
                return text(200, (value or b"").decode())
            if path.endswith("/llm"):
                result = llm.infer("llama2-chat", "say hi")
                return text(200, result.text)
            if path.endswith("/config"):
                return text(200, f"{wasi_config_store.get('greeting')}|{wasi_config_store.get('Not-A-Name')}")
            if path.endswith("/wasi-kv"):
                with wasi_keyvalue_store.open("default") as bucket:
                    atomics.increment(bucket, "hits", 2)
                    hits = atomics.increment(bucket, "hits", 3)
                    bucket.set("word", b"old")
                    with atomics.Cas.new(bucket, "word") as cas:
                        seen = cas.current()
                    atomics.swap(atomics.Cas.new(bucket, "word"), b"new")
                    try:
                        bucket.list_keys("0")
                        paged = "paged"
                    except Err as e:
                        paged = str(e.value)
                    return text(200, f"{hits}|{seen.decode()}|{bucket.get('word').decode()}|{paged}")
            return text(404, "no such route")
        except Err as e:
            return text(500, f"error: {e.value}")
