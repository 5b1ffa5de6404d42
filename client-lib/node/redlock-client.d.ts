// TypeScript declarations of redlock-client.js, the Node.js client of redlockd.
// Kept by hand next to the source; `tsc --strict` checks a program against
// them in the client tests (scripts/test-clients.sh).
// They need no @types/node: the EventEmitter and AbortSignal parts a user
// calls are declared here (structurally the same as Node's).

export const DEFAULT_ADDR: string;

/** Any failure. code: the daemon's code ('BUSY', 'NOQUORUM', ...) or one of
 * this library's: 'LOST', 'CONNECTION', 'PROTOCOL'. */
export class RedlockError extends Error {
  constructor(code: string, text?: string);
  readonly code: string;
  readonly text: string;
}
export class BusyError extends RedlockError {}
export class NoQuorumError extends RedlockError {}
export class NotHeldError extends RedlockError {}
export class BadRequestError extends RedlockError {}
export class TooLongError extends RedlockError {}
export class LimitError extends RedlockError {}
export class AuthError extends RedlockError {}
export class ShutdownError extends RedlockError {}
export class InternalError extends RedlockError {}
/** A held lock was lost: EVENT LOST arrived, or the connection closed. */
export class LostError extends RedlockError {
  constructor(lockId: string, reason: string);
  readonly lockId: string;
  readonly reason: string;
}
export class ConnectionError extends RedlockError {
  constructor(text: string);
}
export class ProtocolError extends RedlockError {
  constructor(text: string);
}

/** A lock granted by the daemon. */
export class Lock {
  /** 32 hex digits; whoever has it may extend or release the lock. */
  readonly id: string;
  /** ms the lock is guaranteed, counted from validFrom. */
  validity: number;
  /** The fencing token, or null if the daemon sent none. */
  readonly fence: bigint | null;
  readonly resources: string[];
  readonly ttl: number | undefined;
  readonly autoextend: boolean;
  readonly detach: boolean;
  /** performance.now() when the request was sent, or, for an acquire with `wait`,
   *  when its reply was read (PROTOCOL.md 8.2). */
  validFrom: number;
  /** null, or the reason of the EVENT LOST that ended it. */
  lost: string | null;
  readonly client: RedlockClient;
  /** Milliseconds left of validity. */
  remaining(): number;
  extend(ttl?: number): Promise<Lock>;
  release(): Promise<void>;
}

export interface ConnectOptions {
  /** Connect timeout in ms (default 10000; 0: none). */
  timeout?: number;
  /** Sent with AUTH once connected. */
  token?: string;
}

export interface AcquireOptions {
  /** ms; default the daemon's default_ttl_ms. */
  ttl?: number | null;
  /** ms to keep trying; 0: one attempt. */
  wait?: number | null;
  autoextend?: boolean;
  detach?: boolean;
  /** ms. */
  maxhold?: number | null;
  priority?: number | null;
  owner?: string | null;
  /** A reader of a read/write lock: readers hold together, writers wait. */
  shared?: boolean;
  /** 1..1000: one of at most that many holders of one resource. */
  permits?: number | null;
}

export interface UsingOptions {
  ttl?: number;
  wait?: number;
  maxhold?: number;
}

/** The AbortSignal handed to using()'s routine (a real AbortSignal; error
 * mirrors reason). */
export interface LockSignal {
  readonly aborted: boolean;
  readonly reason: LostError | undefined;
  error: LostError | undefined;
  throwIfAborted(): void;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export type InfoValue = number | string;

/** One connection to redlockd (a Node EventEmitter). */
export class RedlockClient {
  /** addr: 'host:port', '[v6addr]:port' or a Unix socket path; default
   * $REDLOCK_ADDR, then DEFAULT_ADDR. */
  static connect(addr?: string | null, options?: ConnectOptions): Promise<RedlockClient>;
  readonly addr: string;
  readonly closed: boolean;
  ping(): Promise<true>;
  auth(token: string): Promise<void>;
  acquire(resources: string | string[], options?: AcquireOptions): Promise<Lock>;
  extend(lockOrId: Lock | string, ttl?: number | null): Promise<Lock>;
  release(lockOrId: Lock | string): Promise<void>;
  info(): Promise<Record<string, InfoValue>>;
  inspect(resource: string): Promise<Record<string, InfoValue>>;
  using<T>(resources: string | string[], routine: (signal: LockSignal, lock: Lock) => T | Promise<T>): Promise<T>;
  using<T>(resources: string | string[], options: UsingOptions,
           routine: (signal: LockSignal, lock: Lock) => T | Promise<T>): Promise<T>;
  close(): Promise<void>;

  on(event: 'lost', listener: (lockId: string, reason: string) => void): this;
  on(event: 'event', listener: (name: string, args: string[]) => void): this;
  on(event: 'close', listener: (error: ConnectionError) => void): this;
  once(event: 'lost', listener: (lockId: string, reason: string) => void): this;
  once(event: 'event', listener: (name: string, args: string[]) => void): this;
  once(event: 'close', listener: (error: ConnectionError) => void): this;
  off(event: 'lost' | 'event' | 'close', listener: (...args: any[]) => void): this;
  removeAllListeners(event?: 'lost' | 'event' | 'close'): this;
}

export default RedlockClient;
