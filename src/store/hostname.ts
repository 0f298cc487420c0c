// Hostname normalisation and ban-suffix expansion. Hosts are unique by their
// normalised name, so `PDS.Example.com.` and `pds.example.com` are one host;
// domain bans match whole labels, so a ban is looked up by the list of
// suffixes of a hostname (an indexed IN query, the same SQL on both backends).
//
// Numeric names: the WHATWG URL parser (and so `ws`, fetch and the safe
// fetcher) reads a host whose last label is a number — decimal digits, or
// 0x and hex digits — as an IPv4 address, accepting hex, octal and
// fewer-than-four-part forms: `0x7f.0x1`, `127.0.0.0x1`, `0177.0.0.1`,
// `127.1` and `2130706433` all mean 127.0.0.1. Such a name would pass a
// "DNS name" check and then dial an address nobody checked, so a name that
// ends in a number must be a canonical dotted quad (which the address policy
// then sees as an IP literal); anything else is refused here, before any DNS
// lookup or connection.

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const DOTTED_QUAD_RE = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

/** The WHATWG URL parser's "ends in a number" test: such a host is parsed as IPv4. */
function endsInANumber(name: string): boolean {
  const labels = name.split('.');
  let last = labels[labels.length - 1];
  if (last === '' && labels.length > 1) last = labels[labels.length - 2];
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/i.test(last);
}

/**
 * True for a host name (no port) that a URL parser would turn into an IPv4
 * address other than itself: hex, octal, short or single-number forms.
 */
export function isAmbiguousNumericHost(name: string): boolean {
  return endsInANumber(name) && !DOTTED_QUAD_RE.test(name);
}

/** Input quoted in an error message, capped (it may come from anyone). */
const quote = (raw: string) => (raw.length > 100 ? `${raw.slice(0, 100)}…` : raw);

/**
 * Lower-cases, trims, drops a scheme, a path and a trailing dot; keeps an
 * explicit `:port` (development PDSes listen on e.g. localhost:2583).
 * Throws on anything that is not a plain DNS name or canonical dotted-quad
 * IPv4 address (see the file comment on numeric names).
 */
export function normaliseHostname(raw: string): string {
  let s = raw.trim().toLowerCase();
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  s = s.replace(/\/.*$/, '');
  let port = '';
  const m = /^(.*):(\d{1,5})$/.exec(s);
  if (m) {
    s = m[1];
    const n = Number(m[2]);
    if (n < 1 || n > 65535) throw new Error(`invalid port in hostname: ${quote(raw)}`);
    port = `:${n}`;
  }
  s = s.replace(/\.$/, '');
  if (!HOSTNAME_RE.test(s)) throw new Error(`invalid hostname: ${quote(raw)}`);
  if (isAmbiguousNumericHost(s)) {
    throw new Error(`invalid hostname: ${quote(raw)} is numeric but not a dotted-quad IPv4 address`);
  }
  return s + port;
}

/** Normalises a banned domain (no port allowed). */
export function normaliseDomain(raw: string): string {
  const d = normaliseHostname(raw);
  if (d.includes(':')) throw new Error(`a banned domain cannot have a port: ${quote(raw)}`);
  return d;
}

/** `pds.example.com` → [`pds.example.com`, `example.com`, `com`]; the port is ignored. */
export function domainSuffixes(hostname: string): string[] {
  const name = normaliseHostname(hostname).replace(/:\d+$/, '');
  const labels = name.split('.');
  return labels.map((_, i) => labels.slice(i).join('.'));
}
