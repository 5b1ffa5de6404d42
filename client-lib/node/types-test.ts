// Compiled by scripts/test-clients.sh with `tsc --strict --noEmit` against the
// npm-installed package: the declarations must accept this program.
import RedlockClient, { Lock, BusyError, LostError } from 'redlockd-client';
async function main(): Promise<number> {
  const c: RedlockClient = await RedlockClient.connect('127.0.0.1:7379', { timeout: 1000 });
  const lock: Lock = await c.acquire(['a', 'b'], { ttl: 1000, wait: 0, autoextend: true });
  const f: bigint | null = lock.fence;
  c.on('lost', (id: string, reason: string) => console.log(id, reason, f));
  const n: number = await c.using('r', { ttl: 5000 }, async (signal, l) => {
    if (signal.aborted) throw signal.error as LostError;
    return l.remaining();
  });
  try { await c.acquire('x'); } catch (e) { if (e instanceof BusyError) return e.code.length; }
  await lock.release();
  await c.close();
  return n;
}
void main();
