// Test fixture: a Spin component in JavaScript. The Spin JS SDK's kv,
// variables and sqlite wrappers are not in the npm registry, so it calls
// the interfaces they wrap (fermyon:spin@2.0.0) directly; HTTP is the
// fetch-event handler of @spinframework/wasi-http-proxy.
//
// GET /js/hello, /js/var?<name>, /js/count (key-value `default`),
// /js/sql (a table in SQLite `default`, written and read back),
// /js/fetch?<url> (outbound fetch).
import * as kv from 'fermyon:spin/key-value@2.0.0';
import * as variables from 'fermyon:spin/variables@2.0.0';
import * as sqlite from 'fermyon:spin/sqlite@2.0.0';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// componentize-js throws a `result`'s error as an exception whose
// `payload` is the WIT error value.
function describe(e) {
    return e && e.payload !== undefined ? `error: ${JSON.stringify(e.payload)}` : `error: ${e}`;
}

async function handle(request) {
    const url = new URL(request.url);
    const arg = decodeURIComponent(url.search.slice(1));
    switch (url.pathname.split('/').pop()) {
        case 'hello':
            return 'Hello from JavaScript';
        case 'var':
            return variables.get(arg);
        case 'count': {
            const store = kv.Store.open('default');
            const old = store.get('count');
            const count = (old ? parseInt(decoder.decode(old), 10) : 0) + 1;
            store.set('count', encoder.encode(String(count)));
            return String(count);
        }
        case 'sql': {
            const db = sqlite.Connection.open('default');
            db.execute('CREATE TABLE IF NOT EXISTS js (n INTEGER, s TEXT)', []);
            db.execute('INSERT INTO js VALUES (?, ?)', [
                { tag: 'integer', val: 42n },
                { tag: 'text', val: 'forty-two' },
            ]);
            const result = db.execute('SELECT n, s FROM js WHERE n = ?', [{ tag: 'integer', val: 42n }]);
            const rows = result.rows.map((row) => row.values.map((v) => `${v.tag}:${v.val}`).join(','));
            return `columns=${result.columns.join(',')} rows=${rows.join(';')}`;
        }
        case 'fetch': {
            const response = await fetch(arg);
            return `${response.status} ${await response.text()}`;
        }
        default:
            return new Response('no route', { status: 404 });
    }
}

addEventListener('fetch', (event) => {
    event.respondWith(
        (async () => {
            try {
                const answer = await handle(event.request);
                return answer instanceof Response ? answer : new Response(answer);
            } catch (e) {
                return new Response(describe(e));
            }
        })(),
    );
});
