/**
 * What a large string costs to create here, against the same bytes in smaller strings: V8
 * puts strings over ~128 kB in their own memory mappings, and on some machines (this
 * project's development VM among them) mapping and faulting in that memory dominates.
 * Every 640x480 frame's base64 becomes such a string several times over on its way through
 * the Kinesis JSON protocol, which is why the README points here.
 *
 *   npx tsx bench/large-strings.ts
 */
const BYTES = 800_000;
const PIECES = 8;
const ROUNDS = 200;

function msPer(make: () => void, rounds: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) make();
  return Number(process.hrtime.bigint() - start) / 1e6 / rounds;
}

const whole = Buffer.alloc(BYTES, 0x41);
const piece = Buffer.alloc(BYTES / PIECES, 0x41);
for (let run = 1; run <= 3; run++) {
  const big = msPer(() => whole.toString('latin1'), ROUNDS);
  const small = msPer(() => {
    for (let k = 0; k < PIECES; k++) piece.toString('latin1');
  }, ROUNDS);
  console.log(
    `run ${run}: one ${BYTES / 1000} kB string ${big.toFixed(3)} ms; the same bytes as ${PIECES} strings ${small.toFixed(3)} ms (${(big / small).toFixed(0)}x)`,
  );
}
