'use strict';
// Tests of redlock-client.js against a real redlockd and three real redis-server.
//
//   node --test client-lib/node/test.js
//
// Environment: REDLOCKD_BIN (default ./build/redlockd; a relative path is
// looked up from the current directory, then from the repository root),
// REDIS_SERVER_BIN (default redis-server), H_KEEP_TMP=1 keeps the temp dir.
// Every process is started here and stopped by its pid; waits poll conditions
// against deadlines.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// REDLOCK_CLIENT_MODULE: the installed package to test (scripts/test-clients.sh
// sets it to the npm-installed copy); default the file next to this one.
const CLIENT_MODULE = process.env.REDLOCK_CLIENT_MODULE || path.join(__dirname, 'redlock-client.js');
const RedlockClient = require(CLIENT_MODULE);
const { Lock, RedlockError, BusyError, NotHeldError, BadRequestError, LostError, ConnectionError } =
  RedlockClient;

const ROOT = path.resolve(__dirname, '..', '..');

// ---- Harness: redis-server x3 + redlockd, by pid --------------------------------

const allChildren = new Set();
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
process.on('exit', () => {
  for (const child of allChildren) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function binPath(env, dflt) {
  // A relative path: from the current directory if it is there, else from the
  // repository root.
  const p = process.env[env] || dflt;
  if (!p.includes('/') || path.isAbsolute(p)) return p;
  return fs.existsSync(p) ? path.resolve(p) : path.join(ROOT, p);
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function lineProbe(connectOpts, request, prefix) {
  return new Promise((resolve) => {
    const s = net.createConnection(connectOpts);
    let buf = '';
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write(request));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) done(buf.startsWith(prefix));
    });
  });
}

function procState(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return '?';
  }
}

class Cluster {
  constructor(opts = {}) {
    this.token = opts.token; // undefined: no AUTH
    this.children = [];
    this.masters = []; // { port, child }
  }

  async start() {
    let tmp = process.env.TMPDIR || '/tmp';
    if (tmp.length > 60) tmp = '/tmp'; // Unix socket paths are short
    this.dir = fs.mkdtempSync(path.join(tmp, 'redlock-js-'));
    try {
      for (let i = 0; i < 3; i++) this.masters.push(await this._startRedis(i));
      await this._startDaemon();
    } catch (err) {
      this.stop();
      throw err;
    }
    return this;
  }

  _spawn(argv, log) {
    const fd = fs.openSync(log, 'a');
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    child.on('error', () => {}); // reported as a start failure below
    child.exited = false;
    child.on('exit', () => {
      child.exited = true;
    });
    this.children.push(child);
    allChildren.add(child);
    return child;
  }

  async _kill(child) {
    allChildren.delete(child);
    if (child.exited) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      return;
    }
    await gone;
  }

  async _startRedis(i) {
    const bin = process.env.REDIS_SERVER_BIN || 'redis-server';
    const dir = path.join(this.dir, `redis${i}`);
    fs.mkdirSync(dir);
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const child = this._spawn(
        [bin, '--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1',
          '--daemonize', 'no', '--dir', dir],
        path.join(dir, 'redis.log'));
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && !child.exited && child.pid) {
        if (await lineProbe({ host: '127.0.0.1', port }, 'PING\r\n', '+PONG')) return { port, child };
        await delay(10);
      }
      await this._kill(child); // port taken or too slow: another port
    }
    throw new Error(`redis-server did not start; see ${dir}/redis.log`);
  }

  async _startDaemon() {
    const bin = binPath('REDLOCKD_BIN', './build/redlockd');
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`${bin} is not executable (build it, or set REDLOCKD_BIN)`);
    }
    this.sock = path.join(this.dir, 'redlockd.sock');
    this.log = path.join(this.dir, 'redlockd.log');
    const ini = path.join(this.dir, 'redlockd.ini');
    const server = [];
    if (this.token !== undefined) {
      this.tokenFile = path.join(this.dir, 'token');
      fs.writeFileSync(this.tokenFile, `${this.token}\n`);
      server.push(`auth_token_file = ${this.tokenFile}`);
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      this.tcp = `127.0.0.1:${await freePort()}`;
      fs.writeFileSync(ini, [
        '[server]', `listen = ${this.tcp}`, `unix_socket = ${this.sock}`, ...server,
        '[redis]', `masters = ${this.masters.map((m) => `127.0.0.1:${m.port}`).join(', ')}`,
        'master_timeout_ms = 100',
        '[log]', 'level = info', ''].join('\n'));
      const child = this._spawn([bin, '-c', ini], this.log);
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline && !child.exited && child.pid) {
        if (await lineProbe({ path: this.sock }, 'PING\r\n', this.token === undefined ? 'PONG' : 'ERR AUTH')) {
          this.daemon = child;
          return;
        }
        await delay(10);
      }
      await this._kill(child);
    }
    throw new Error(`redlockd did not start:\n${this.logTail()}`);
  }

  logTail(n = 40) {
    try {
      return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async pause(i) {
    const { child } = this.masters[i];
    process.kill(child.pid, 'SIGSTOP');
    await waitUntil(() => ['T', 't'].includes(procState(child.pid)), 2000, `master ${i} to stop`);
  }

  async resume(i) {
    const { child } = this.masters[i];
    process.kill(child.pid, 'SIGCONT');
    await waitUntil(() => !['T', 't'].includes(procState(child.pid)), 2000, `master ${i} to resume`);
  }

  async stop() {
    for (const child of this.children.reverse()) await this._kill(child);
    this.children = [];
    if (!this.dir) return;
    if (process.env.H_KEEP_TMP && process.env.H_KEEP_TMP !== '0') console.error(`kept ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Each test opens clients through this and closes them at the end.
function clientsOf(cluster) {
  const open = [];
  const connect = async (tcp = false, opts) => {
    const c = await RedlockClient.connect(tcp ? cluster.tcp : cluster.sock, opts);
    open.push(c);
    return c;
  };
  connect.closeAll = () => Promise.all(open.splice(0).map((c) => c.close()));
  return connect;
}

// Runs fn; on failure, shows the daemon's log.
function withLog(cluster, fn) {
  return async (t) => {
    const connect = clientsOf(cluster);
    try {
      await fn(connect, t);
    } catch (err) {
      console.error(`---- redlockd log ----\n${cluster.logTail()}\n---- end ----`);
      throw err;
    } finally {
      await connect.closeAll();
    }
  };
}

let seq = 0;
const res = (name) => `js:${name}:${process.pid}:${++seq}`;

// ---- Tests -------------------------------------------------------------------------

describe('redlock-client', () => {
  const cluster = new Cluster();
  before(() => cluster.start());
  after(() => cluster.stop());

  it('pings over the Unix socket and TCP', withLog(cluster, async (connect) => {
    assert.strictEqual(await (await connect()).ping(), true);
    assert.strictEqual(await (await connect(true)).ping(), true);
  }));

  it('uses REDLOCK_ADDR by default', withLog(cluster, async () => {
    const old = process.env.REDLOCK_ADDR;
    process.env.REDLOCK_ADDR = cluster.tcp;
    try {
      const c = await RedlockClient.connect();
      assert.strictEqual(c.addr, cluster.tcp);
      assert.strictEqual(await c.ping(), true);
      await c.close();
    } finally {
      if (old === undefined) delete process.env.REDLOCK_ADDR;
      else process.env.REDLOCK_ADDR = old;
    }
  }));

  it('rejects a refused connection with ConnectionError', async () => {
    await assert.rejects(RedlockClient.connect(`127.0.0.1:${await freePort()}`),
      (err) => err instanceof ConnectionError && err.code === 'CONNECTION');
    await assert.rejects(RedlockClient.connect(path.join(cluster.dir, 'nothing.sock')), ConnectionError);
    assert.throws(() => RedlockClient.connect('no-port-here'), TypeError);
  });

  it('acquires and releases', withLog(cluster, async (connect) => {
    const c = await connect();
    const a = res('a');
    const b = res('b');
    const lock = await c.acquire([a, b], { ttl: 10000 });
    assert.ok(lock instanceof Lock);
    assert.match(lock.id, /^[0-9a-f]{32}$/);
    assert.ok(lock.validity > 0 && lock.validity <= 10000, `validity ${lock.validity}`);
    assert.ok(lock.fence === null || typeof lock.fence === 'bigint');
    assert.deepStrictEqual(lock.resources, [a, b]);
    assert.ok(lock.remaining() > 9000);
    await lock.release();
    await assert.rejects(c.release(lock.id), (err) => err instanceof NotHeldError && err.code === 'NOTHELD');
    await (await c.acquire(`${a},${b}`, { wait: 0 })).release();
  }));

  it('counts validity from the reply after a WAIT (PROTOCOL.md 8.2)', withLog(cluster, async (connect) => {
    // After a WAIT longer than the TTL, counting from the send would make a
    // fresh lock look expired. The holder's lock simply expires: no sleep.
    const c1 = await connect();
    const c2 = await connect();
    const r = res('vw');
    await c1.acquire(r, { ttl: 1500 });
    const lock = await c2.acquire(r, { ttl: 1000, wait: 20000 });
    assert.ok(lock.remaining() > 500, `remaining ${lock.remaining()} of validity ${lock.validity}`);
    await lock.release();
  }));

  it('answers BUSY to a second client', withLog(cluster, async (connect) => {
    const c1 = await connect();
    const c2 = await connect(true);
    const r = res('busy');
    const lock = await c1.acquire(r, { ttl: 10000 });
    const t0 = Date.now();
    await assert.rejects(c2.acquire(r, { wait: 0 }), (err) =>
      err instanceof BusyError && err instanceof RedlockError && err instanceof Error &&
      err.code === 'BUSY' && err.text.length > 0);
    assert.ok(Date.now() - t0 < 1000);
    await lock.release();
    await (await c2.acquire(r, { wait: 0 })).release();
  }));

  it('SHARED readers together, PERMITS n holders', withLog(cluster, async (connect) => {
    const c1 = await connect();
    const c2 = await connect(true);
    const r = res('rw');
    const r1 = await c1.acquire(r, { ttl: 10000, shared: true });
    const r2 = await c2.acquire(r, { ttl: 10000, shared: true, wait: 0 });
    await assert.rejects(c2.acquire(r, { ttl: 10000, wait: 0 }), (err) => err instanceof BusyError);
    await r1.release();
    await r2.release();
    await (await c2.acquire(r, { wait: 0 })).release();
    const s = res('sem');
    const p1 = await c1.acquire(s, { ttl: 10000, permits: 2 });
    const p2 = await c2.acquire(s, { ttl: 10000, permits: 2, wait: 0 });
    await assert.rejects(c1.acquire(s, { permits: 2, wait: 0 }), (err) => err instanceof BusyError);
    await assert.rejects(c1.acquire(s, { permits: 3, wait: 0 }),
      (err) => err instanceof RedlockError && err.code === 'BADREQ' && err.text.includes('PERMITS 2'));
    await p1.release();
    await p2.release();
    for (const bad of [0, 1001, 1.5, '2']) {
      await assert.rejects(c1.acquire(s, { permits: bad }), TypeError);
    }
  }));

  it('WAIT gets the lock promptly after the release', withLog(cluster, async (connect) => {
    const c1 = await connect();
    const c2 = await connect();
    const r = res('wait');
    const lock = await c1.acquire(r, { ttl: 30000 });
    let gotAt = 0;
    const waiting = c2.acquire(r, { ttl: 30000, wait: 10000 }).then((l) => {
      gotAt = Date.now();
      return l;
    });
    await waitUntil(async () => (await c1.info()).waiters >= 1, 5000, 'the second ACQUIRE to wait');
    assert.strictEqual(gotAt, 0);
    const releasedAt = Date.now();
    await lock.release();
    const got = await waiting;
    assert.ok(gotAt - releasedAt < 1000, `handed over after ${gotAt - releasedAt} ms`);
    assert.notStrictEqual(got.id, lock.id);
    await got.release();
  }));

  it('WAIT times out with BUSY', withLog(cluster, async (connect) => {
    const c1 = await connect();
    const c2 = await connect();
    const r = res('waitout');
    const lock = await c1.acquire(r, { ttl: 30000 });
    const t0 = Date.now();
    await assert.rejects(c2.acquire(r, { wait: 300 }), BusyError);
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
    await lock.release();
  }));

  it('extends', withLog(cluster, async (connect) => {
    const c = await connect();
    const lock = await c.acquire(res('ext'), { ttl: 1000 });
    assert.strictEqual(await c.extend(lock, 20000), lock);
    assert.ok(lock.validity > 15000, `validity ${lock.validity}`);
    const byId = await c.extend(lock.id); // default: the ttl it was acquired with
    assert.strictEqual(byId.id, lock.id);
    assert.ok(byId.validity > 900 && byId.validity <= 1000, `validity ${byId.validity}`);
    await lock.extend(5000);
    assert.ok(lock.validity <= 5000);
    await lock.release();
    await assert.rejects(c.extend(lock), NotHeldError);
    await assert.rejects(c.extend('0'.repeat(32)), NotHeldError);
  }));

  it('releases connection-bound locks on close', withLog(cluster, async (connect) => {
    const c1 = await RedlockClient.connect(cluster.sock);
    const c2 = await connect();
    const r = res('close');
    const lock = await c1.acquire(r, { ttl: 30000 });
    let closeEvent = null;
    c1.on('close', (err) => {
      closeEvent = err;
    });
    await c1.close();
    assert.ok(c1.closed);
    assert.ok(closeEvent instanceof ConnectionError);
    assert.strictEqual(lock.lost, 'DISCONNECTED');
    const t0 = Date.now();
    const got = await c2.acquire(r, { ttl: 30000, wait: 5000 });
    assert.ok(Date.now() - t0 < 1000);
    await got.release();
    await assert.rejects(c1.ping(), ConnectionError);
    await c1.close(); // twice is fine
  }));

  it('DETACH survives close', withLog(cluster, async (connect) => {
    const c1 = await RedlockClient.connect(cluster.sock);
    const r = res('detach');
    const lock = await c1.acquire(r, { ttl: 30000, detach: true });
    assert.strictEqual(lock.detach, true);
    await c1.close();
    assert.strictEqual(lock.lost, null);
    const c2 = await connect();
    await assert.rejects(c2.acquire(r, { wait: 0 }), BusyError);
    assert.ok((await c2.extend(lock.id, 30000)).validity > 0); // any connection, by id
    await c2.release(lock.id);
    await (await c2.acquire(r, { wait: 0 })).release();
  }));

  it('using() keeps a 500 ms lock for 1.5 s', withLog(cluster, async (connect) => {
    const c = await connect();
    const other = await connect();
    const r = res('using');
    const t0 = Date.now();
    const value = await c.using(r, { ttl: 500 }, async (signal, lock) => {
      assert.ok(signal instanceof AbortSignal);
      assert.strictEqual(lock.autoextend, true);
      while (Date.now() - t0 < 1500) {
        if (signal.aborted) throw signal.error;
        await delay(50);
      }
      await assert.rejects(other.acquire(r, { wait: 0 }), BusyError);
      assert.strictEqual(signal.aborted, false);
      return 42;
    });
    assert.strictEqual(value, 42);
    await (await other.acquire(r, { wait: 0 })).release();
  }));

  it('using() releases the lock when the routine throws', withLog(cluster, async (connect) => {
    const c = await connect();
    const other = await connect();
    const r = res('throw');
    await assert.rejects(c.using(r, { ttl: 10000 }, async () => {
      throw new Error('boom');
    }), /boom/);
    await (await other.acquire(r, { wait: 0 })).release(); // at once, not after the TTL
    assert.strictEqual((await c.info()).locks_held, 0);
  }));

  it('using() rejects with BUSY without running the routine', withLog(cluster, async (connect) => {
    const c = await connect();
    const other = await connect();
    const r = res('usingbusy');
    const lock = await c.acquire(r, { ttl: 10000 });
    let ran = false;
    await assert.rejects(other.using(r, { ttl: 1000, wait: 0 }, async () => {
      ran = true;
    }), BusyError);
    assert.strictEqual(ran, false);
    await lock.release();
  }));

  it('MAXHOLD aborts the signal and emits lost', withLog(cluster, async (connect) => {
    const c = await connect();
    const events = [];
    c.on('lost', (id, reason) => events.push([id, reason]));
    let lockId = null;
    await assert.rejects(c.using(res('maxhold'), { ttl: 300, maxhold: 600 }, async (signal, lock) => {
      lockId = lock.id;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no EVENT LOST MAXHOLD within 5 s')), 5000);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      assert.ok(signal.reason instanceof LostError);
      assert.strictEqual(signal.error, signal.reason);
      assert.strictEqual(signal.reason.reason, 'MAXHOLD');
      assert.strictEqual(lock.lost, 'MAXHOLD');
      // returns without throwing: using() reports the loss
    }), (err) => err instanceof LostError && err.reason === 'MAXHOLD' && err.code === 'LOST');
    assert.deepStrictEqual(events, [[lockId, 'MAXHOLD']]);
    await assert.rejects(c.release(lockId), NotHeldError);
  }));

  it('pipelines concurrent calls and matches replies in order', withLog(cluster, async (connect) => {
    const c = await connect();
    const holder = await connect();
    const calls = [];
    for (let i = 0; i < 100; i++) {
      calls.push(c.ping());
      calls.push(c.acquire(res(`pipe${i}`), { ttl: 10000 }));
    }
    calls.push(c.info());
    const out = await Promise.all(calls);
    const locks = out.filter((x) => x instanceof Lock);
    assert.strictEqual(locks.length, 100);
    assert.strictEqual(new Set(locks.map((l) => l.id)).size, 100);
    assert.ok(out.filter((x) => x === true).length === 100);
    assert.strictEqual(typeof out[out.length - 1].version, 'string');
    await Promise.all(locks.map((l) => l.release()));
    assert.strictEqual((await c.info()).locks_held, 0);

    // A waiting ACQUIRE delays the replies behind it (in order), not the writes.
    const r = res('pipewait');
    const held = await holder.acquire(r, { ttl: 30000 });
    const order = [];
    const p1 = c.acquire(r, { wait: 5000 }).then((l) => {
      order.push('acquire');
      return l;
    });
    const p2 = c.ping().then(() => order.push('ping'));
    await waitUntil(async () => (await holder.info()).waiters >= 1, 5000, 'the ACQUIRE to wait');
    assert.deepStrictEqual(order, []);
    await held.release();
    const [l] = await Promise.all([p1, p2]);
    assert.deepStrictEqual(order, ['acquire', 'ping']);
    await l.release();
  }));

  it('checks arguments before sending', withLog(cluster, async (connect) => {
    const c = await connect();
    for (const bad of ['', 'a,,b', 'a b', 'a\nPING', 'a,a', 'x'.repeat(513), ['a', 'b,c'], []]) {
      await assert.rejects(c.acquire(bad), RangeError, JSON.stringify(bad));
    }
    await assert.rejects(c.acquire('a', { ttl: 0 }), RangeError);
    await assert.rejects(c.acquire('a', { ttl: '100' }), TypeError);
    await assert.rejects(c.acquire('a', { wait: 2 ** 31 }), RangeError);
    await assert.rejects(c.release('not-a-lock-id'), TypeError);
    await assert.rejects(c.extend('A'.repeat(32)), TypeError);
    assert.strictEqual(await c.ping(), true);
  }));

  it('maps daemon errors to classes', withLog(cluster, async (connect) => {
    const c = await connect();
    await assert.rejects(c.acquire(res('bad'), { autoextend: true, detach: true }),
      (err) => err instanceof BadRequestError && err.code === 'BADREQ');
    await assert.rejects(c.acquire(res('bad'), { maxhold: 1000 }), BadRequestError);
    assert.strictEqual(await c.ping(), true);
    const info = await c.info();
    assert.strictEqual(info.masters, 3);
  }));

  it('rejects calls in flight when closed', withLog(cluster, async (connect) => {
    const c1 = await connect();
    const c2 = await RedlockClient.connect(cluster.sock);
    const r = res('inflight');
    const lock = await c1.acquire(r, { ttl: 30000 });
    const waiting = c2.acquire(r, { wait: 20000 });
    await waitUntil(async () => (await c1.info()).waiters >= 1, 5000, 'the ACQUIRE to wait');
    await c2.close();
    await assert.rejects(waiting, ConnectionError);
    await waitUntil(async () => (await c1.info()).waiters === 0, 5000, 'the waiter to leave');
    await lock.release();
  }));

  it('imports from ESM (default and named exports)', () => {
    const file = require.resolve(CLIENT_MODULE);
    const code = `import R, { RedlockClient, BusyError } from ${JSON.stringify(file)};
      if (R !== RedlockClient || typeof R.connect !== 'function' || !(new BusyError('BUSY') instanceof Error)) process.exit(1);
      console.log('esm ok');`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.strictEqual(out.trim(), 'esm ok');
  });
});

describe('redlock-client, quorum loss', () => {
  const cluster = new Cluster();
  before(() => cluster.start());
  after(() => cluster.stop());

  it('using() signal aborts when two masters are SIGSTOPped', withLog(cluster, async (connect) => {
    const c = await connect();
    const ttl = 500;
    let lostAfter = -1;
    let lockId = null;
    await assert.rejects(c.using(res('quorum'), { ttl }, async (signal, lock) => {
      lockId = lock.id;
      await waitUntil(async () => (await c.info()).extend_ok >= 1, 5000, 'a first extension');
      assert.strictEqual(signal.aborted, false);
      const stoppedAt = Date.now();
      try {
        await cluster.pause(1);
        await cluster.pause(2);
        await waitUntil(() => signal.aborted, 5000, 'EVENT LOST after losing the quorum');
        lostAfter = Date.now() - stoppedAt;
      } finally {
        await cluster.resume(1);
        await cluster.resume(2);
      }
      if (signal.aborted) throw signal.error;
    }), (err) => err instanceof LostError && err.reason === 'NOQUORUM' && err.lockId === lockId);
    // Before the validity it last promised ran out (<= ttl after the last
    // extension), with some slack for this process's scheduling.
    assert.ok(lostAfter >= 0 && lostAfter < ttl + 100, `EVENT LOST ${lostAfter} ms after the quorum was lost`);
    // Usable again once the masters are back.
    await waitUntil(async () => {
      try {
        await (await c.acquire(res('after'), { ttl: 5000, wait: 0 })).release();
        return true;
      } catch (err) {
        if (err.code === 'NOQUORUM' || err.code === 'BUSY') return false;
        throw err;
      }
    }, 10000, 'a lock after the masters resumed');
  }));
});

describe('redlock-client with AUTH', () => {
  const cluster = new Cluster({ token: 'js-s3cret' });
  before(() => cluster.start());
  after(() => cluster.stop());

  it('reads the token from REDLOCK_TOKEN_FILE', withLog(cluster, async (connect) => {
    const old = process.env.REDLOCK_TOKEN_FILE;
    try {
      delete process.env.REDLOCK_TOKEN_FILE;
      await assert.rejects((await connect()).ping(), (err) => err.code === 'AUTH');
      process.env.REDLOCK_TOKEN_FILE = cluster.tokenFile;
      assert.strictEqual(await (await connect()).ping(), true);
      process.env.REDLOCK_TOKEN_FILE = path.join(cluster.dir, 'missing');
      await assert.rejects(connect(), (err) => err.code === 'ENOENT');
      // An explicit token still wins.
      assert.strictEqual(await (await connect(false, { token: 'js-s3cret' })).ping(), true);
    } finally {
      if (old === undefined) delete process.env.REDLOCK_TOKEN_FILE;
      else process.env.REDLOCK_TOKEN_FILE = old;
    }
  }));
});
