// Hostname normalisation and ban-suffix expansion. Hosts are unique by their
// normalised name, so `PDS.Example.com.` and `pds.example.com` are one host;
// domain bans match whole labels, so a ban is looked up by the list of
// suffixes of a hostname (an indexed IN query, the same SQL on both backends).

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Lower-cases, trims, drops a scheme, a path and a trailing dot; keeps an
 * explicit `:port` (development PDSes listen on e.g. localhost:2583).
 * Throws on anything that is not a plain DNS name or IPv4 address.
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
    if (n < 1 || n > 65535) throw new Error(`invalid port in hostname: ${raw}`);
    port = `:${n}`;
  }
  s = s.replace(/\.$/, '');
  if (!HOSTNAME_RE.test(s)) throw new Error(`invalid hostname: ${raw}`);
  return s + port;
}

/** Normalises a banned domain (no port allowed). */
export function normaliseDomain(raw: string): string {
  const d = normaliseHostname(raw);
  if (d.includes(':')) throw new Error(`a banned domain cannot have a port: ${raw}`);
  return d;
}

/** `pds.example.com` → [`pds.example.com`, `example.com`, `com`]; the port is ignored. */
export function domainSuffixes(hostname: string): string[] {
  const name = normaliseHostname(hostname).replace(/:\d+$/, '');
  const labels = name.split('.');
  return labels.map((_, i) => labels.slice(i).join('.'));
}
