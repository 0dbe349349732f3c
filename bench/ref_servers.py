# Copied from the project's shared side-by-side bench kit (see bench/README.md, "Link submissions").
# One change: ``--synchronous`` (default NORMAL, as in the kit) so bench/submit.py can run the
# careful reference with the same SQLite durability setting as jixiao's write connection.
# Reference servers for the side-by-side benchmark.
#   bare   : static 200 for GET and POST (framework ceiling)
#   sqlite : token lookup + one response row per POST in SQLite (WAL, synchronous=NORMAL) via aiosqlite
import argparse, hashlib, hmac, html, os, sqlite3, time
import aiosqlite
from aiohttp import web

SECRET = b"bench-secret"
OPTIONS = ["Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"]

def page(token, csrf):
    radios = "".join(f'<label><input type="radio" name="q1" value="{i+1}" required> {html.escape(o)}</label><br>' for i, o in enumerate(OPTIONS))
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>Satisfaction questionnaire</title></head><body>'
            f'<form method="post" action="/s/{token}"><input type="hidden" name="csrf" value="{csrf}">'
            f'<p>How satisfied are you with our service?</p>{radios}'
            f'<p>Any comment? (optional)</p><textarea name="comment" maxlength="2000"></textarea>'
            f'<button type="submit">Submit</button></form></body></html>')

def csrf_for(token):
    return hmac.new(SECRET, token.encode(), hashlib.sha256).hexdigest()

def make_bare():
    body = page("x", "0" * 64).encode()
    async def get(request):
        return web.Response(body=body, content_type="text/html")
    async def post(request):
        return web.Response(text="Thank you!", content_type="text/html")
    app = web.Application()
    app.router.add_get("/s/{token}", get)
    app.router.add_post("/s/{token}", post)
    return app

SYNCHRONOUS = "NORMAL"

def make_sqlite(path):
    app = web.Application()
    async def startup(app):
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        await db.execute("PRAGMA busy_timeout=5000")
        app["db"] = db
    async def cleanup(app):
        await app["db"].close()
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)

    async def get(request):
        token = request.match_info["token"]
        db = app["db"]
        async with db.execute("SELECT id, completed_at FROM invitation WHERE token=?", (token,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise web.HTTPNotFound(text="Unknown link")
        if row[1] is not None:
            return web.Response(status=409, text="Already answered")
        return web.Response(text=page(token, csrf_for(token)), content_type="text/html")

    async def post(request):
        token = request.match_info["token"]
        form = await request.post()
        if not hmac.compare_digest(form.get("csrf", ""), csrf_for(token)):
            raise web.HTTPForbidden(text="Bad CSRF token")
        try:
            score = int(form.get("q1", ""))
        except ValueError:
            score = 0
        if not 1 <= score <= 5:
            raise web.HTTPBadRequest(text="Pick one option")
        comment = form.get("comment", "")[:2000]
        db = app["db"]
        now = time.time()
        async with db.execute("SELECT id, completed_at FROM invitation WHERE token=?", (token,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise web.HTTPNotFound(text="Unknown link")
        if row[1] is not None:
            return web.Response(status=409, text="Already answered")
        # one transaction: the response row + mark the invitation as used
        await db.execute("INSERT INTO response(invitation_id, score, comment, submitted_at) VALUES (?,?,?,?)", (row[0], score, comment, now))
        cur = await db.execute("UPDATE invitation SET completed_at=? WHERE id=? AND completed_at IS NULL", (now, row[0]))
        if cur.rowcount != 1:
            await db.rollback()
            return web.Response(status=409, text="Already answered")
        await db.commit()
        return web.Response(text="Thank you!", content_type="text/html")

    app.router.add_get("/s/{token}", get)
    app.router.add_post("/s/{token}", post)
    return app

def init_db(path, tokens_file):
    if os.path.exists(path):
        for suf in ("", "-wal", "-shm"):
            if os.path.exists(path + suf): os.remove(path + suf)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript("""
      CREATE TABLE invitation(id INTEGER PRIMARY KEY, org TEXT NOT NULL, token TEXT NOT NULL UNIQUE, completed_at REAL);
      CREATE TABLE response(id INTEGER PRIMARY KEY, invitation_id INTEGER NOT NULL UNIQUE REFERENCES invitation(id),
                            score INTEGER NOT NULL CHECK(score BETWEEN 1 AND 5), comment TEXT, submitted_at REAL NOT NULL);
    """)
    toks = [t.strip() for t in open(tokens_file) if t.strip()]
    con.executemany("INSERT INTO invitation(org, token) VALUES (?,?)", ((f"Org{i}", t) for i, t in enumerate(toks)))
    con.commit(); con.close()
    print("initialised", path, len(toks))

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["bare", "sqlite", "initdb"])
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--db", default="ref.sqlite3")
    ap.add_argument("--tokens", default="ref_tokens.txt")
    ap.add_argument("--synchronous", default="NORMAL", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    a = ap.parse_args()
    SYNCHRONOUS = a.synchronous
    if a.mode == "initdb":
        init_db(a.db, a.tokens)
    else:
        app = make_bare() if a.mode == "bare" else make_sqlite(a.db)
        web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)
