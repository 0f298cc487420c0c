// A tiny exact-path router for node:http, the one every HTTP route of the
// relay is registered on. XRPC methods and admin routes are fixed paths, so a
// Map from path to per-method handlers is all we need: no patterns, no
// framework. A known path with the wrong method answers 405 with an Allow
// header; an unknown path is left to the caller (the relay's other handlers or
// its 404), which is why `match` can say "not mine". Modules outside the API
// (the collection index) export a RouteRegistrar and the API registers it on
// its own routers, so their routes get the API's rules (authentication, CORS,
// error shape, metrics) without repeating them. Serving is the dispatcher's
// job (src/http/dispatch.ts; the API's rules in src/api/index.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Query } from './request.ts';

export type Method = 'GET' | 'POST';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** The request path (no query), as matched. */
  path: string;
  query: Query;
  /** The client's address (trusted proxies honoured; src/http/client-address.ts), for logs. */
  clientAddress: string;
  /** What per-client limits count under: the client's IPv4 address or IPv6 /64. */
  clientKey: string;
}

/**
 * A handler returns a JSON-serialisable body (sent with 200), or undefined
 * when it has written the response itself through `ctx.res` (another status,
 * a redirect, a non-JSON body, a stream such as server-sent events). It throws
 * ApiError for lexicon errors; once it has started writing, a throw cuts the
 * connection instead.
 */
export type Handler = (ctx: RequestContext) => Promise<unknown>;

export interface Route {
  method: Method;
  path: string;
  handler: Handler;
}

/** Registers one module's routes on a router that someone else serves. */
export type RouteRegistrar = (router: Router) => void;

export type RouteMatch =
  | { kind: 'found'; route: Route }
  | { kind: 'method-not-allowed'; path: string; allow: Method[] }
  | { kind: 'none' };

export class Router {
  private readonly byPath = new Map<string, Map<Method, Route>>();

  add(method: Method, path: string, handler: Handler): this {
    let methods = this.byPath.get(path);
    if (!methods) {
      methods = new Map();
      this.byPath.set(path, methods);
    }
    if (methods.has(method)) throw new Error(`duplicate route ${method} ${path}`);
    methods.set(method, { method, path, handler });
    return this;
  }

  /** Registers another module's routes here. */
  use(register: RouteRegistrar): this {
    register(this);
    return this;
  }

  get(path: string, handler: Handler): this {
    return this.add('GET', path, handler);
  }

  post(path: string, handler: Handler): this {
    return this.add('POST', path, handler);
  }

  /** HEAD is served as GET (node drops the body). */
  match(method: string, path: string): RouteMatch {
    const methods = this.byPath.get(path);
    if (!methods) return { kind: 'none' };
    const route = methods.get((method === 'HEAD' ? 'GET' : method) as Method);
    if (route) return { kind: 'found', route };
    return { kind: 'method-not-allowed', path, allow: [...methods.keys()] };
  }

  has(path: string): boolean {
    return this.byPath.has(path);
  }

  routes(): Route[] {
    return [...this.byPath.values()].flatMap((m) => [...m.values()]);
  }
}
