/**
 * Putting a flow onto a (remote, edge) Node-RED through its Admin API, the way the editor's Deploy does:
 * read the current flows with their revision, replace the tab this flow is (same tab id: a re-deploy
 * updates it) and the config nodes it brings, keep everything else, and POST the result with that
 * revision, so a concurrent edit is refused instead of lost.
 */
import type { FlowNode } from './mapping';

export interface DeployTarget {
  /** http(s)://host:port of the Node-RED editor / admin API (its httpAdminRoot included, if not /). */
  url: string;
  /** A bearer token, or a user to log in as (adminAuth credentials). */
  token?: string;
  username?: string;
  password?: string;
}

export interface DeployResult {
  tabId: string;
  /** Nodes of ours now on the target, and how many of the target's nodes were kept. */
  deployed: number;
  kept: number;
  replaced: boolean;
  rev: string;
}

export class DeployError extends Error {}

async function request(target: DeployTarget, path: string, init: RequestInit, token?: string): Promise<Response> {
  const url = `${target.url.replace(/\/+$/, '')}${path}`;
  try {
    return await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  } catch (err) {
    throw new DeployError(`cannot reach ${url}: ${((err as Error & { cause?: Error }).cause ?? (err as Error)).message}`);
  }
}

async function tokenOf(target: DeployTarget): Promise<string | undefined> {
  if (target.token) return target.token;
  if (!target.username) return undefined;
  const res = await request(target, '/auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: target.username, password: target.password ?? '' }),
  });
  if (res.status !== 200) throw new DeployError(`login as ${target.username} at ${target.url} was refused (HTTP ${res.status})`);
  return ((await res.json()) as { access_token: string }).access_token;
}

export async function deployFlow(flow: FlowNode[], target: DeployTarget): Promise<DeployResult> {
  const tab = flow.find((n) => n.type === 'tab');
  if (!tab) throw new DeployError('the flow has no tab to deploy');
  const token = await tokenOf(target);
  const current = await request(target, '/flows', { headers: { accept: 'application/json', 'Node-RED-API-Version': 'v2' } }, token);
  if (current.status === 401) throw new DeployError(`${target.url} needs credentials (its adminAuth is on): give --user and --password, or --token`);
  if (current.status !== 200) throw new DeployError(`GET ${target.url}/flows answered HTTP ${current.status}`);
  const { rev, flows } = (await current.json()) as { rev: string; flows: FlowNode[] };
  const ours = new Set(flow.map((n) => n.id));
  const replaced = flows.some((n) => n.id === tab.id);
  // The old copy of the tab goes, and so does any node (a config node) the new flow brings again.
  const kept = flows.filter((n) => n.id !== tab.id && n.z !== tab.id && !ours.has(n.id));
  const body = JSON.stringify({ rev, flows: [...kept, ...flow] });
  const res = await request(target, '/flows', { method: 'POST', headers: { 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' }, body }, token);
  if (res.status === 409) throw new DeployError(`the flows on ${target.url} changed while deploying (revision ${rev} is stale): try again`);
  if (res.status !== 200 && res.status !== 204) throw new DeployError(`POST ${target.url}/flows answered HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const answer = res.status === 200 ? ((await res.json().catch(() => ({}))) as { rev?: string }) : {};
  return { tabId: tab.id, deployed: flow.length, kept: kept.length, replaced, rev: answer.rev ?? '' };
}
