'use strict';
/**
 * redlock-client - Node.js client of redlockd, the Redlock lock manager daemon.
 *
 * One file, no dependencies beyond Node's own `net` and `events` (Node 18+).
 * CommonJS; from ESM, `import RedlockClient from './redlock-client.js'` (the
 * default export is the class; the named exports below work too).
 *
 *   const RedlockClient = require('./redlock-client.js');
 *   const client = await RedlockClient.connect('127.0.0.1:7379');
 *   await client.using('report', { ttl: 5000 }, async (signal) => {
 *     await step1();
 *     if (signal.aborted) throw signal.error;   // EVENT LOST arrived
 *     await step2();
 *   });
 *   await client.close();
 *
 * One RedlockClient is one connection. Requests are written at once
 * (pipelining) and their replies are matched in order (the daemon answers in
 * request order), so any number of calls may be in flight. An ACQUIRE that
 * WAITs delays the replies to every later request on the same connection:
 * use a separate client for waiting acquires when that matters.
 * The protocol is protocol/PROTOCOL.md.
 */

const fs = require('fs');
const net = require('net');
const { EventEmitter } = require('events');

const DEFAULT_ADDR = '/run/redlockd/redlockd.sock';
const TOKEN_FILE_ENV = 'REDLOCK_TOKEN_FILE'; // a file whose first line is the AUTH token

/** The AUTH token in the first line of the file at path (the daemon's auth_token_file format). */
function readTokenFile(file) {
  const first = fs.readFileSync(file, 'latin1').split(/\r?\n|\r/, 1)[0];
  if (!first) throw new Error(`${file}: the token file's first line is empty`);
  return first;
}
const MAX_MS = 2147483647;
const MAX_LINE = 1 << 20; // longest line accepted from the daemon
const LOST_MEMORY = 4096; // lost lock ids remembered (events that beat their reply)

// ---- Errors ----------------------------------------------------------------

/** Any failure. `code`: the daemon's code ('BUSY', 'NOQUORUM', ...) or one of
 * this library's: 'LOST', 'CONNECTION', 'PROTOCOL'. `text`: the rest. */
class RedlockError extends Error {
  constructor(code, text = '') {
    super(text ? `${code} ${text}` : code);
    this.name = new.target.name;
    this.code = code;
    this.text = text;
  }
}
class BusyError extends RedlockError {}
class NoQuorumError extends RedlockError {}
class NotHeldError extends RedlockError {}
class BadRequestError extends RedlockError {}
class TooLongError extends RedlockError {}
class LimitError extends RedlockError {}
class AuthError extends RedlockError {}
class ShutdownError extends RedlockError {}
class InternalError extends RedlockError {}

/** A held lock was lost: EVENT LOST arrived, or the owning connection closed
 * (reason 'DISCONNECTED'). */
class LostError extends RedlockError {
  constructor(lockId, reason) {
    super('LOST', `lock ${lockId}: ${reason}`);
    this.lockId = lockId;
    this.reason = reason;
  }
}
/** The connection could not be made, or it closed. */
class ConnectionError extends RedlockError {
  constructor(text) {
    super('CONNECTION', text);
  }
}
/** The daemon sent something this library cannot parse. */
class ProtocolError extends RedlockError {
  constructor(text) {
    super('PROTOCOL', text);
  }
}

const ERRORS = {
  BUSY: BusyError,
  NOQUORUM: NoQuorumError,
  NOTHELD: NotHeldError,
  BADREQ: BadRequestError,
  TOOLONG: TooLongError,
  LIMIT: LimitError,
  AUTH: AuthError,
  SHUTDOWN: ShutdownError,
  INTERNAL: InternalError,
};

function daemonError(line) {
  const m = /^ERR[ \t]+(\S+)[ \t]*(.*)$/.exec(line);
  const code = m ? m[1] : 'INTERNAL';
  const Cls = ERRORS[code] || RedlockError;
  return new Cls(code, m ? m[2] : '');
}

// ---- Argument checks (nothing the caller passes can inject a request) -------

function isPrintable(s) {
  return /^[\x21-\x7e]+$/.test(s);
}

function msArg(name, v, low) {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`${name} must be an integer number of milliseconds, not ${String(v)}`);
  }
  if (v < low || v > MAX_MS) throw new RangeError(`${name} must be in ${low}..${MAX_MS}, not ${v}`);
  return String(v);
}

function resourceList(resources) {
  const names = typeof resources === 'string' ? resources.split(',') : Array.from(resources || []);
  if (names.length === 0) throw new RangeError('no resources');
  const seen = new Set();
  for (const n of names) {
    if (typeof n !== 'string') throw new TypeError(`resource names must be strings, not ${String(n)}`);
    if (n.length < 1 || n.length > 512 || n.includes(',') || !isPrintable(n)) {
      throw new RangeError(
        `bad resource name ${JSON.stringify(n)}: want 1..512 printable ASCII characters, no ',' or spaces`);
    }
    if (seen.has(n)) throw new RangeError(`resource ${JSON.stringify(n)} named twice`);
    seen.add(n);
  }
  return names;
}

function lockIdArg(lockOrId) {
  const id = lockOrId instanceof Lock ? lockOrId.id : lockOrId;
  if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) {
    throw new TypeError(`not a lock id (32 lowercase hex digits): ${String(id)}`);
  }
  return id;
}

function parseAddr(addr) {
  if (typeof addr !== 'string') throw new TypeError('addr must be a string');
  if (addr.includes('/')) return { path: addr };
  let m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) || /^([^:]+):(\d+)$/.exec(addr);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new TypeError(`bad address ${JSON.stringify(addr)}: want host:port, [v6addr]:port or a path containing '/'`);
  }
  return { host: m[1], port };
}

function intOrString(v) {
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  return v;
}

function now() {
  return performance.now();
}

// ---- Lock ----------------------------------------------------------------------

/**
 * A lock granted by the daemon.
 *   id         lock id (32 hex digits; a capability: whoever has it may extend/release)
 *   validity   ms the lock is guaranteed, counted from validFrom
 *   fence      fencing token as a BigInt (64-bit), or null if the daemon sent none
 *   resources  array of resource names
 *   ttl        ttl asked for at acquire (undefined: daemon default; extend() without ttl uses it)
 *   validFrom  performance.now() when the request was sent (the safe side), or, for an
 *              acquire with `wait`, when its reply was read (the send may be the whole
 *              wait earlier; PROTOCOL.md 8.2)
 *   lost       null, or the reason of the EVENT LOST that ended it
 */
class Lock {
  constructor(client, id, validity, fence, resources, opts = {}) {
    Object.defineProperty(this, 'client', { value: client, enumerable: false });
    this.id = id;
    this.validity = validity;
    this.fence = fence;
    this.resources = resources;
    this.ttl = opts.ttl;
    this.autoextend = Boolean(opts.autoextend);
    this.detach = Boolean(opts.detach);
    this.validFrom = opts.validFrom === undefined ? now() : opts.validFrom;
    this.lost = null;
  }

  /** Milliseconds left of `validity` (AUTOEXTEND renewals are not reported). */
  remaining() {
    return Math.max(0, Math.floor(this.validity - (now() - this.validFrom)));
  }

  /** client.extend(this, ttl): updates this lock's validity and returns it. */
  extend(ttl) {
    return this.client.extend(this, ttl);
  }

  /** client.release(this). */
  release() {
    return this.client.release(this);
  }
}

// ---- Client ---------------------------------------------------------------------

/**
 * Events:
 *   'lost'  (lockId, reason)  EVENT LOST for a lock of this connection
 *   'event' (name, args)      every event the daemon pushes (args: array of strings)
 *   'close' (error)           the connection closed (error: why, a ConnectionError)
 * No 'error' event is ever emitted: failures reject the calls' promises.
 */
class RedlockClient extends EventEmitter {
  /**
   * Connect. addr: 'host:port', '[v6addr]:port' or a Unix socket path (contains
   * '/'); default process.env.REDLOCK_ADDR, then '/run/redlockd/redlockd.sock'.
   * options.timeout: connect timeout in ms (default 10000; 0: none).
   * options.token: sent with AUTH once connected; default: the first line of the
   * file named by process.env.REDLOCK_TOKEN_FILE, if set (tokens do not belong in
   * code or command lines).
   */
  static connect(addr, options = {}) {
    if (addr === undefined || addr === null || addr === '') {
      addr = process.env.REDLOCK_ADDR || DEFAULT_ADDR;
    }
    if (options.token === undefined && process.env[TOKEN_FILE_ENV]) {
      try {
        options = { ...options, token: readTokenFile(process.env[TOKEN_FILE_ENV]) };
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const target = parseAddr(addr);
    const timeout = options.timeout === undefined ? 10000 : options.timeout;
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(target);
      let timer = null;
      const fail = (err) => {
        if (timer) clearTimeout(timer);
        socket.destroy();
        reject(new ConnectionError(`cannot connect to ${addr}: ${err.message}`));
      };
      socket.once('error', fail);
      if (timeout > 0) timer = setTimeout(() => fail(new Error(`no connection in ${timeout} ms`)), timeout);
      socket.once('connect', () => {
        if (timer) clearTimeout(timer);
        socket.removeListener('error', fail);
        const client = new RedlockClient(socket, addr);
        if (options.token === undefined) return resolve(client);
        client.auth(options.token).then(() => resolve(client), (err) => {
          client.close();
          reject(err);
        });
      });
    });
  }

  /** Use RedlockClient.connect(). */
  constructor(socket, addr) {
    super();
    this.addr = addr;
    this._socket = socket;
    this._buf = '';
    this._pending = []; // FIFO of { resolve, reject, data, want, acquire }
    this._head = 0;
    this._current = null; // the call whose DATA block is being read
    this._locks = new Map(); // id -> WeakRef(Lock): connection-bound locks
    this._aborts = new Map(); // id -> abort(err) of using()
    this._lost = new Map(); // recent EVENT LOST: id -> reason
    this._closed = null; // null while open, else a ConnectionError
    this._closing = null;
    socket.setEncoding('latin1');
    if (socket.setNoDelay && !socket.path) socket.setNoDelay(true);
    socket.on('data', (chunk) => this._onData(chunk));
    socket.on('error', (err) => {
      this._why = `failed: ${err.message}`;
    });
    socket.on('close', () => this._onClose());
  }

  /** True once the connection is closed. */
  get closed() {
    return this._closed !== null;
  }

  /** PING; resolves true. */
  async ping() {
    const line = await this._request('PING');
    if (!/^PONG\b/.test(line)) throw new ProtocolError(`PING answered ${JSON.stringify(line)}`);
    return true;
  }

  /** AUTH <token>. */
  async auth(token) {
    if (typeof token !== 'string' || !isPrintable(token)) {
      throw new TypeError('bad token: want printable ASCII without spaces');
    }
    await this._request(`AUTH ${token}`);
  }

  /**
   * ACQUIRE one lock over all of resources ('a,b' or ['a', 'b']).
   * options: ttl (ms; default the daemon's default_ttl_ms), wait (ms to keep
   * trying; 0: one attempt), autoextend, detach, maxhold (ms), priority, owner,
   * shared (a reader of a read/write lock), permits (1..1000: one of at most
   * that many holders of one resource).
   * Resolves to a Lock; rejects with BusyError, NoQuorumError, RedlockError.
   */
  async acquire(resources, options = {}) {
    const names = resourceList(resources);
    const o = options || {};
    const line = ['ACQUIRE', names.join(',')];
    if (o.ttl !== undefined && o.ttl !== null) line.push(msArg('ttl', o.ttl, 1));
    if (o.wait !== undefined && o.wait !== null) line.push('WAIT', msArg('wait', o.wait, 0));
    if (o.autoextend) line.push('AUTOEXTEND');
    if (o.detach) line.push('DETACH');
    if (o.maxhold !== undefined && o.maxhold !== null) line.push('MAXHOLD', msArg('maxhold', o.maxhold, 0));
    if (o.priority !== undefined && o.priority !== null) line.push('PRIORITY', msArg('priority', o.priority, 0));
    if (o.owner !== undefined && o.owner !== null) {
      if (typeof o.owner !== 'string' || o.owner.length > 128 || !isPrintable(o.owner)) {
        throw new TypeError(`bad owner id ${String(o.owner)}`);
      }
      line.push('OWNER', o.owner);
    }
    if (o.shared) line.push('SHARED');
    if (o.permits !== undefined && o.permits !== null) {
      if (!Number.isInteger(o.permits) || o.permits < 1 || o.permits > 1000) {
        throw new TypeError(`bad permits ${String(o.permits)}: want 1..1000`);
      }
      line.push('PERMITS', String(o.permits));
    }
    const sent = now();
    const call = await this._requestCall(line.join(' '), true);
    const [id, validity, fence] = parseOkLock(call.line);
    // PROTOCOL.md 8.2: counted from the send, or after a WAIT from the read of the reply.
    const waited = o.wait !== undefined && o.wait !== null;
    const lock = new Lock(this, id, validity, fence, names, {
      ttl: o.ttl === null ? undefined : o.ttl,
      autoextend: o.autoextend,
      detach: o.detach,
      validFrom: waited ? call.readAt : sent,
    });
    if (!lock.detach) {
      this._track(lock);
      if (this._lost.has(id)) lock.lost = this._lost.get(id);
    }
    return lock;
  }

  /**
   * EXTEND a lock (Lock or id) to expire ttl ms from now (default: the ttl it
   * was acquired with). Given a Lock, updates its validity and resolves to it;
   * given an id, resolves to a new Lock (resources unknown: []).
   * Rejects with NotHeldError (expired, lost, taken) or NoQuorumError (still
   * held with its previous validity: try again).
   */
  async extend(lockOrId, ttl) {
    const id = lockIdArg(lockOrId);
    let line = `EXTEND ${id}`;
    if (ttl !== undefined && ttl !== null) line += ` ${msArg('ttl', ttl, 1)}`;
    const validFrom = now();
    const [, validity, fence] = parseOkLock(await this._request(line));
    if (lockOrId instanceof Lock) {
      lockOrId.validity = validity;
      lockOrId.validFrom = validFrom;
      return lockOrId;
    }
    return new Lock(this, id, validity, fence, [], { validFrom });
  }

  /** RELEASE a lock (Lock or id). Rejects with NotHeldError if it was not held. */
  async release(lockOrId) {
    const id = lockIdArg(lockOrId);
    try {
      await this._request(`RELEASE ${id}`);
    } finally {
      this._locks.delete(id);
    }
  }

  /** INFO as an object; whole-number values are numbers. */
  async info() {
    return toObject(await this._data('INFO'));
  }

  /** INSPECT <resource>: the resource's state on the masters. */
  async inspect(resource) {
    const [name] = resourceList([resource]);
    return toObject(await this._data(`INSPECT ${name}`));
  }

  /**
   * Run routine(signal, lock) under an AUTOEXTEND lock (the seeds' using()):
   * the daemon keeps extending it until the routine settles. `signal` is a real
   * AbortSignal, aborted as soon as the lock is lost (EVENT LOST, or the
   * connection closed) with a LostError as signal.reason (also signal.error).
   * options: ttl, wait, maxhold (ms). Resolves to the routine's value. The lock
   * is released when the routine settles; if it was lost and the routine did
   * not throw, rejects with the LostError (the work was not protected throughout).
   */
  async using(resources, options, routine) {
    if (typeof options === 'function') {
      routine = options;
      options = {};
    }
    if (typeof routine !== 'function') throw new TypeError('using() needs a routine');
    const o = options || {};
    const lock = await this.acquire(resources, { ttl: o.ttl, wait: o.wait, maxhold: o.maxhold, autoextend: true });
    const controller = new AbortController();
    const signal = controller.signal;
    signal.error = undefined; // the seeds read signal.error
    const abort = (err) => {
      if (!signal.aborted) {
        signal.error = err;
        controller.abort(err);
      }
    };
    this._aborts.set(lock.id, abort);
    if (lock.lost) abort(new LostError(lock.id, lock.lost));
    else if (this._closed) abort(new LostError(lock.id, 'DISCONNECTED'));

    let result;
    let failure = null;
    try {
      result = await routine(signal, lock);
    } catch (err) {
      failure = { err };
    }
    this._aborts.delete(lock.id);
    let releaseError = null;
    if (!signal.aborted) {
      try {
        await this.release(lock);
      } catch (err) {
        // NOTHELD: lost just before the release (any EVENT LOST came first).
        if (err instanceof NotHeldError) abort(new LostError(lock.id, lock.lost || 'NOTHELD'));
        else releaseError = err;
      }
    }
    if (failure) throw failure.err;
    if (signal.aborted) throw signal.reason;
    if (releaseError) throw releaseError;
    return result;
  }

  /**
   * Close the connection; the daemon releases its connection-bound locks
   * (DETACHed locks stay). Calls in flight reject with ConnectionError.
   * Resolves once closed; safe to call more than once.
   */
  close() {
    if (!this._closing) {
      this._closing = new Promise((resolve) => {
        if (this._socket.destroyed && this._closed) return resolve();
        this._socket.once('close', () => resolve());
      });
      if (!this._closed) this._why = 'closed by the client';
      this._socket.destroy();
    }
    return this._closing;
  }

  // ---- plumbing

  _track(lock) {
    this._locks.set(lock.id, new WeakRef(lock));
    if (this._locks.size > 1024 && this._locks.size % 1024 === 0) {
      for (const [id, ref] of this._locks) if (!ref.deref()) this._locks.delete(id);
    }
  }

  _send(line, acquire = false) {
    return new Promise((resolve, reject) => {
      if (this._closed) return reject(this._closed);
      this._pending.push({ resolve, reject, line: null, data: null, want: 0, acquire, readAt: 0 });
      this._socket.write(`${line}\r\n`);
    });
  }

  async _request(line, acquire = false) {
    return (await this._requestCall(line, acquire)).line;
  }

  async _requestCall(line, acquire = false) {
    const call = await this._send(line, acquire);
    if (call.data) throw new ProtocolError(`unexpected DATA block in reply to ${line.split(' ')[0]}`);
    if (call.line.startsWith('ERR')) throw daemonError(call.line);
    return call;
  }

  async _data(line) {
    const call = await this._send(line);
    if (call.line.startsWith('ERR')) throw daemonError(call.line);
    if (!call.data) throw new ProtocolError(`${line.split(' ')[0]} answered ${JSON.stringify(call.line)}`);
    return call.data;
  }

  _onData(chunk) {
    this._buf += chunk;
    let start = 0;
    let nl;
    while ((nl = this._buf.indexOf('\n', start)) !== -1) {
      let line = this._buf.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (!this._dispatch(line)) {
        this._why = `failed: unexpected line from the daemon: ${JSON.stringify(line.slice(0, 100))}`;
        this._socket.destroy();
        return;
      }
      if (this._closed) return;
    }
    this._buf = this._buf.slice(start);
    if (this._buf.length > MAX_LINE) {
      this._why = `failed: line from the daemon over ${MAX_LINE} bytes`;
      this._socket.destroy();
    }
  }

  _dispatch(line) {
    let call = this._current;
    // Events never come inside a DATA block.
    if (!call && /^EVENT[ \t]/.test(line)) {
      this._onEvent(line.split(/[ \t]+/).slice(1));
      return true;
    }
    if (call) {
      call.data.push(line);
      if (--call.want === 0) {
        this._current = null;
        call.resolve(call);
      }
      return true;
    }
    if (this._head >= this._pending.length) return false;
    call = this._pending[this._head];
    this._pending[this._head++] = undefined;
    if (this._head > 1024 && this._head * 2 > this._pending.length) {
      this._pending = this._pending.slice(this._head);
      this._head = 0;
    }
    call.line = line;
    call.readAt = now();
    const m = /^DATA[ \t]+(\d+)/.exec(line);
    if (/^DATA\b/.test(line)) {
      if (!m) return false;
      call.data = [];
      call.want = Number(m[1]);
      if (call.want > 0) {
        this._current = call;
        return true;
      }
    }
    call.resolve(call);
    return true;
  }

  _onEvent(args) {
    const [name, id, reason = 'UNKNOWN'] = args;
    if (name === 'LOST' && id) {
      this._lost.set(id, reason);
      if (this._lost.size > LOST_MEMORY) this._lost.delete(this._lost.keys().next().value);
      const ref = this._locks.get(id);
      this._locks.delete(id);
      const lock = ref && ref.deref();
      if (lock) lock.lost = reason;
      const abort = this._aborts.get(id);
      if (abort) abort(new LostError(id, reason));
      this.emit('lost', id, reason);
    }
    this.emit('event', name, args.slice(1));
  }

  _onClose() {
    if (this._closed) return;
    const error = new ConnectionError(`connection to ${this.addr} ${this._why || 'closed by the daemon'}`);
    this._closed = error;
    const pending = this._pending.slice(this._head);
    this._pending = [];
    this._head = 0;
    if (this._current && !pending.includes(this._current)) pending.unshift(this._current);
    this._current = null;
    for (const call of pending) call.reject(error);
    // The daemon releases a connection's locks when it closes.
    for (const ref of this._locks.values()) {
      const lock = ref.deref();
      if (lock && !lock.lost) lock.lost = 'DISCONNECTED';
    }
    this._locks.clear();
    for (const [id, abort] of this._aborts) abort(new LostError(id, 'DISCONNECTED'));
    this.emit('close', error);
  }
}

function parseOkLock(line) {
  const p = line.split(/[ \t]+/);
  if (p[0] !== 'OK' || !/^[0-9a-f]{32}$/.test(p[1] || '') || !/^\d+$/.test(p[2] || '')) {
    throw new ProtocolError(`unexpected reply ${JSON.stringify(line)}`);
  }
  const fence = p.length > 3 && /^\d+$/.test(p[3]) ? BigInt(p[3]) : null;
  return [p[1], Number(p[2]), fence];
}

function toObject(lines) {
  const out = {};
  for (const l of lines) {
    const i = l.indexOf(' ');
    const key = i < 0 ? l : l.slice(0, i);
    out[key] = intOrString(i < 0 ? '' : l.slice(i + 1));
  }
  return out;
}

module.exports = RedlockClient;
module.exports.RedlockClient = RedlockClient;
module.exports.Lock = Lock;
module.exports.RedlockError = RedlockError;
module.exports.BusyError = BusyError;
module.exports.NoQuorumError = NoQuorumError;
module.exports.NotHeldError = NotHeldError;
module.exports.BadRequestError = BadRequestError;
module.exports.TooLongError = TooLongError;
module.exports.LimitError = LimitError;
module.exports.AuthError = AuthError;
module.exports.ShutdownError = ShutdownError;
module.exports.InternalError = InternalError;
module.exports.LostError = LostError;
module.exports.ConnectionError = ConnectionError;
module.exports.ProtocolError = ProtocolError;
module.exports.DEFAULT_ADDR = DEFAULT_ADDR;
module.exports.TOKEN_FILE_ENV = TOKEN_FILE_ENV;
module.exports.readTokenFile = readTokenFile;
module.exports.default = RedlockClient;
