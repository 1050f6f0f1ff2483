import net from 'node:net';

/** An IP network from the config: "10.0.0.0/8", "fd00::/8", or one address (a /32 or /128). */
export interface Network {
  /** As written. */
  text: string;
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** An IPv4-mapped IPv6 address (::ffff:10.1.2.3) as its IPv4 address; others lower-cased. */
export function unmapped(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && net.isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}

/** Throws an Error that says what is wrong when `entry` is not a CIDR or an address. */
export function parseCidr(entry: string): Network {
  const slash = entry.indexOf('/');
  const address = unmapped(slash < 0 ? entry : entry.slice(0, slash));
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
  if (!family) throw new Error(`${JSON.stringify(entry)} is not an IP address or a CIDR such as 10.0.0.0/8 or fd00::/8`);
  const max = family === 'ipv4' ? 32 : 128;
  const text = slash < 0 ? String(max) : entry.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new Error(`${JSON.stringify(entry)}: the prefix length after "/" must be 0-${max}`);
  return { text: entry, address, prefix, family };
}
