/** `tokengate schema` as an editor setup runs it: the real bin/tokengate.js in a child process. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { configJsonSchemaText } from '../../src/config/jsonSchema';

const BIN = resolve(__dirname, '..', '..', 'bin', 'tokengate.js');

test('tokengate schema prints the JSON Schema of tokengate.yaml on stdout and exits 0', async () => {
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
    const child = execFile(process.execPath, [BIN, 'schema'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') fail(err);
      else done({ code: child.exitCode, stdout, stderr });
    });
  });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  expect(r.stdout).toBe(configJsonSchemaText());
  expect(JSON.parse(r.stdout)).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object' });
});
