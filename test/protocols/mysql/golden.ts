/** Loads golden conversations (test/golden/mysql/*.hex) and replays them through the codec. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  COM_QUIT,
  COM_STMT_EXECUTE,
  MAX_PACKET_PAYLOAD,
  Packet,
  PacketFramer,
  ResponseOutcome,
  ResponseTracker,
  decodeCommand,
} from '../../../protocols/mysql';

export const GOLDEN_DIR = join(__dirname, '..', '..', 'golden', 'mysql');

export interface Conversation {
  client: Buffer[];
  server: Buffer[];
}

export function loadGolden(name: string): Conversation {
  const conv: Conversation = { client: [], server: [] };
  for (const line of readFileSync(join(GOLDEN_DIR, name), 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [dir, hex] = line.split(' ');
    (dir === 'C' ? conv.client : conv.server).push(Buffer.from(hex, 'hex'));
  }
  return conv;
}

export function stream(chunks: Buffer[]): Buffer {
  return Buffer.concat(chunks);
}

/** Frames a byte stream delivered as the given chunks. */
export function frameChunks(chunks: Buffer[], capture?: (b: number, s: number, c: boolean) => number): Packet[] {
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture });
  const out = chunks.flatMap((c) => framer.push(c));
  expect(framer.atBoundary).toBe(true);
  return out;
}

export interface Replay {
  outcomes: ResponseOutcome[];
  /** Byte offset in the server stream where each response ended. */
  boundaries: number[];
}

/**
 * Replays the command phase: `commands` are client packets after login, `server`
 * the server stream from the first response on. Each response must end exactly on a
 * packet and the stream must be used up.
 */
export function replayCommands(commands: Packet[], serverChunks: Buffer[], capabilities: number, capture?: (b: number, s: number, c: boolean) => number): Replay {
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture });
  const tracker = new ResponseTracker(capabilities);
  const outcomes: ResponseOutcome[] = [];
  const boundaries: number[] = [];
  let ci = 0;
  let offset = 0;
  const startNext = (): void => {
    while (ci < commands.length) {
      const cmd = decodeCommand(commands[ci].payload);
      ci++;
      if (cmd.command === COM_QUIT) continue;
      const r = tracker.begin(cmd.command, { cursor: cmd.command === COM_STMT_EXECUTE && ResponseTracker.isCursorFlags(cmd.cursorFlags) });
      if (r === 'more') return;
      outcomes.push(tracker.outcome!);
    }
  };
  startNext();
  for (const chunk of serverChunks) {
    for (let i = 0; i < chunk.length; ) {
      // Feed byte ranges so boundaries can be measured exactly: one byte at a time is simplest.
      const packets = framer.push(chunk.subarray(i, i + 1));
      i++;
      offset++;
      for (const p of packets) {
        if (tracker.onPacket(p.payload, p.payloadLength) === 'done') {
          outcomes.push(tracker.outcome!);
          boundaries.push(offset);
          startNext();
        }
      }
    }
  }
  expect(tracker.busy).toBe(false);
  expect(framer.atBoundary).toBe(true);
  return { outcomes, boundaries };
}
