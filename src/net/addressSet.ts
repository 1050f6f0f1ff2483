import net from 'node:net';
import { unmapped, type Network } from '../config/cidr';

/**
 * A set of networks written as CIDRs ("10.0.0.0/8", "fd00::/8") or single addresses. IPv4-mapped
 * IPv6 addresses (::ffff:10.1.2.3, what a dual-stack socket reports) match the IPv4 networks.
 */
export class AddressSet {
  private readonly list = new net.BlockList();

  constructor(networks: readonly Network[]) {
    for (const { address, prefix, family } of networks) this.list.addSubnet(address, prefix, family);
  }

  has(address: string | undefined): boolean {
    if (!address) return false;
    const a = unmapped(address);
    const family = net.isIPv4(a) ? 'ipv4' : net.isIPv6(a) ? 'ipv6' : undefined;
    return family !== undefined && this.list.check(a, family);
  }
}

