// Verifies a hookd Security Event Token with the independent `jose`
// library, as a listener would.
//
// Input on stdin: {"jwks": {...}, "token": "...", "issuer": "...", "audience": "...",
// "algorithms": ["ES256"]} (algorithms is optional: RS256 only when absent).
// Output on success: {"payload": {...}, "protectedHeader": {...}} on stdout.
// On failure: the error on stderr and exit status 1.
import { createLocalJWKSet, jwtVerify } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

try {
  const input = JSON.parse(await readStdin());
  const keys = createLocalJWKSet(input.jwks);
  const { payload, protectedHeader } = await jwtVerify(input.token, keys, {
    issuer: input.issuer,
    audience: input.audience,
    typ: 'secevent+jwt',
    algorithms: input.algorithms ?? ['RS256'],
  });
  process.stdout.write(JSON.stringify({ payload, protectedHeader }) + '\n');
} catch (err) {
  process.stderr.write(`${err.code ?? err.name}: ${err.message}\n`);
  process.exit(1);
}
