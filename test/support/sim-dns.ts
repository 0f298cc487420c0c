// The DNS server every relay process a test or benchmark starts is pointed
// at (RELAY_DNS_SERVERS): the simulated network's (sim/dns.ts), on loopback,
// started once per test process (top-level await, so spawning stays
// synchronous). It knows no names, so every lookup fails at once, as a lookup
// of a simulated `.test` handle did against the real DNS, but no query leaves
// the machine. A test that needs answers starts its own SimDns.
import { SimDns } from '../../sim/dns.ts';

const shared = await SimDns.start();

/** `127.0.0.1:<port>` of the shared simulated DNS server. */
export const TEST_DNS_SERVERS = shared.server;
