// Turns raw Kubernetes objects into a validated ClusterState; an invalid object is left out and named.
import { Field, FieldError, isRecord } from './fields.js';
import { familyOf } from './ip.js';
import { printableError } from './printable.js';
import { selectorEndpointSlices } from './selector-endpoints.js';
import { closestName, OBJECT_SCHEMAS, unknownFields } from './unknown-fields.js';
import type {
  ClusterState, Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, IPFamily, ModelError, Node, Pod, Protocol, Service,
  ServiceCIDR, ServicePort, ServiceType,
} from './types.js';

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The Node label whose value is its zone, for topology hints. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';
/** ferry's per-Service choice of endpoint balancing. */
export const BALANCING_ANNOTATION = 'ferry.dev/balancing';
/** When the change behind an EndpointSlice's last update happened, as the EndpointSlice controller stamps it (RFC 3339). */
export const LAST_CHANGE_TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';
// RFC 3339 as Go's time.RFC3339Nano reads it (kube-proxy's parse): seconds, optional fraction, Z or an offset.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// RFC 1123 label: what the API server allows for namespaces, Service names and port names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// RFC 1123 subdomain: EndpointSlice and Node names.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The result of reading objects: the model plus one error for every object left out. */
export interface ModelResult {
  state: ClusterState;
  errors: ModelError[];
  /**
   * Worth telling but not wrong, the objects are still read: a field the API does not have (`field` is
   * its path), an object of a kind or apiVersion ferry does not read (`field` is kind or apiVersion), a
   * selector that matches no Pod.
   */
  warnings: ModelError[];
}

/** One raw object read into the model: what it became, or why it was left out, and what to warn about. */
export type ReadObject = ReadValue & { warnings: ModelError[] };

export type ReadValue =
  | { kind: 'Service'; value: Service | undefined }
  /** `triggerTime`: the slice's last-change-trigger-time (ms since the epoch) when it has one that parses. */
  | { kind: 'EndpointSlice'; value: EndpointSlice | undefined; triggerTime?: number }
  | { kind: 'Node'; value: Node }
  | { kind: 'Pod'; value: Pod }
  | { kind: 'ServiceCIDR'; value: ServiceCIDR }
  | { kind: 'ignored' }
  | { kind: 'error'; error: ModelError };

/**
 * Builds the cluster model from API objects at once (the commands, tests; the agent's ClusterStore reads
 * them one by one). Lists are expanded; kinds ferry does not read are ignored with a warning.
 */
export function buildClusterState(objects: unknown[]): ModelResult {
  const state: ClusterState = { services: [], endpointSlices: [], nodes: [], serviceCIDRs: [], pods: [] };
  const errors: ModelError[] = [];
  const warnings: ModelError[] = [];
  for (const object of expandLists(objects)) {
    const read = readObject(object);
    warnings.push(...read.warnings);
    switch (read.kind) {
      case 'Service':
        if (read.value) state.services.push(read.value);
        break;
      case 'EndpointSlice':
        if (read.value) state.endpointSlices.push(read.value);
        break;
      case 'Node':
        state.nodes.push(read.value);
        break;
      case 'Pod':
        state.pods.push(read.value);
        break;
      case 'ServiceCIDR':
        state.serviceCIDRs.push(read.value);
        break;
      case 'error':
        errors.push(read.error);
        break;
    }
  }
  const derived = selectorEndpointSlices(state);
  for (const slice of derived.slices) state.endpointSlices.push(slice);
  return { state, errors, warnings: [...warnings, ...derived.warnings] };
}

/** One raw object read into the model, on its own: what buildClusterState does with each. */
export function readObject(object: unknown): ReadObject {
  const root = new Field(object, '');
  const [apiVersion, kind] = [text(root.get('apiVersion')), text(root.get('kind'))];
  const warning = (field: string, message: string): ModelError => printableError({ kind: kind || 'object', object: objectName(root), field, message });
  // What the object's reading tolerated (a field left at its default, a list entry skipped).
  const tolerated: ModelError[] = [];
  const read = readValue(root, kind, (error) => tolerated.push(warning(error.field, error.message)));
  const schema = OBJECT_SCHEMAS[`${apiVersion}/${kind}`];
  // Something that is not an object, or has a kind that is not a string, is an error already.
  if (!isRecord(object) || (!schema && read.kind === 'error')) return { ...read, warnings: [] };
  const warnings = schema
    ? unknownFields(object, schema).map(({ path, suggestion }) => warning(path, `${path}: unknown field${suggestion ? ` (did you mean ${suggestion}?)` : ''}`))
    : [notRead(apiVersion, kind, warning)];
  return { ...read, warnings: [...(read.kind === 'error' ? [] : tolerated), ...warnings] };
}

/** Hears a field a reader tolerated: the error it would have been, to report as a warning. */
type Tolerate = (error: FieldError) => void;

/**
 * The value `read` gives, or `fallback` when the field is invalid (told to `tolerate`): for a field the
 * Service works without, as kube-proxy keeps a Service the API server stored.
 */
function tolerant<T>(read: () => T, fallback: T, tolerate: Tolerate, instead: string): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof FieldError)) throw error;
    tolerate(new FieldError(error.field, `${error.detail} (ignored: ${instead})`));
    return fallback;
  }
}

/** The entries of a list that read; each one that does not is skipped and told to `tolerate`, the rest stand. */
function tolerantEntries<T>(list: Field, read: (entry: Field) => T, tolerate: Tolerate): T[] {
  const entries = tolerant(() => list.list(), [], tolerate, 'the whole list');
  return entries.flatMap((entry) => tolerant(() => [read(entry)], [], tolerate, 'this entry skipped, the others used'));
}

const text = (field: Field) => (typeof field.value === 'string' ? field.value : '');

// The kinds ferry reads, each with the apiVersions it reads them in.
const READ_KINDS = new Map<string, string[]>();
for (const [apiVersion, kind] of Object.keys(OBJECT_SCHEMAS).map((key) => [key.slice(0, key.lastIndexOf('/')), key.slice(key.lastIndexOf('/') + 1)] as const)) {
  READ_KINDS.set(kind, [...(READ_KINDS.get(kind) ?? []), apiVersion]);
}

/** The warning for an object ferry does not read: a kind it does not use (or a likely typo of one), or another apiVersion. */
function notRead(apiVersion: string, kind: string, warning: (field: string, message: string) => ModelError): ModelError {
  if (kind === '') return warning('kind', 'kind: not set (ignored)');
  const versions = READ_KINDS.get(kind);
  if (versions) return warning('apiVersion', `apiVersion: ${apiVersion || 'not set'} is not read by ferry (ignored; ${kind} is read as ${versions.join(' or ')})`);
  const typo = closestName(kind, [...READ_KINDS.keys()]);
  // Endpoints (v1) are what the EndpointSlice controller mirrors; ferry, like kube-proxy, reads only slices.
  const hint = kind === 'Endpoints' ? '; ferry reads EndpointSlices' : typo ? `; did you mean ${typo}?` : '';
  return warning('kind', `not read by ferry (ignored${hint})`);
}

function readValue(root: Field, kind: string, tolerate: Tolerate): ReadValue {
  try {
    switch (apiKind(root)) {
      case 'v1/Service':
        return { kind: 'Service', value: readService(root, tolerate) };
      case 'discovery.k8s.io/v1/EndpointSlice':
        return { kind: 'EndpointSlice', value: readEndpointSlice(root), triggerTime: readTriggerTime(root) };
      case 'v1/Node':
        return { kind: 'Node', value: readNode(root) };
      case 'v1/Pod':
        return { kind: 'Pod', value: readPod(root) };
      case 'networking.k8s.io/v1/ServiceCIDR':
      case 'networking.k8s.io/v1beta1/ServiceCIDR':
        return { kind: 'ServiceCIDR', value: readServiceCIDR(root) };
      default:
        return { kind: 'ignored' };
    }
  } catch (error) {
    if (!(error instanceof FieldError)) throw error;
    return { kind: 'error', error: printableError({ kind, object: objectName(root), field: error.field, message: error.message }) };
  }
}

/** The objects with every `kind: ...List` replaced by its items, recursively. */
export function* expandLists(objects: unknown[]): Generator<unknown> {
  for (const object of objects) {
    if (isRecord(object) && typeof object.kind === 'string' && object.kind.endsWith('List') && Array.isArray(object.items)) {
      yield* expandLists(object.items);
    } else {
      yield object;
    }
  }
}

function apiKind(root: Field): string {
  if (!isRecord(root.value)) root.fail('must be an object');
  return `${root.get('apiVersion').string('')}/${root.get('kind').string('')}`;
}

function objectName(root: Field): string {
  const metadata = root.get('metadata');
  // An empty name names nothing either: the message must still point at an object.
  const value = metadata.get('name').value;
  const name = typeof value === 'string' && value ? value : '<unnamed>';
  const namespace = metadata.get('namespace').value;
  return typeof namespace === 'string' && namespace ? `${namespace}/${name}` : name;
}

function readName(field: Field, pattern: RegExp, maxLength: number): string {
  const name = field.string();
  if (name.length > maxLength || !pattern.test(name)) field.fail(`must be a DNS name of at most ${maxLength} characters`);
  return name;
}

function readMetadata(root: Field, namePattern: RegExp, maxLength: number) {
  const metadata = root.get('metadata');
  const namespaceField = metadata.get('namespace');
  const namespace = namespaceField.absent ? 'default' : readName(namespaceField, DNS_LABEL, 63);
  return { namespace, name: readName(metadata.get('name'), namePattern, maxLength), metadata };
}

/** The label that hands a Service to another proxy; kube-proxy's informers select it away. */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';

/**
 * A Service, or undefined for headless and ExternalName Services (they have no virtual IP) and other
 * proxies' ones. Only what a Service cannot be without (its name, a cluster IP, a usable port) makes it
 * an error; any other field that does not read is tolerated: left at its default, or, in a list, the
 * entry skipped (a warning each). Source ranges fail closed: ranges given of which none reads for a
 * family let nobody from outside reach the load-balancer IPs of that family (see compute).
 */
function readService(root: Field, tolerate: Tolerate): Service | undefined {
  const { namespace, name, metadata } = readMetadata(root, DNS_LABEL, 63);
  const spec = root.get('spec');
  const type = tolerant(() => spec.get('type').oneOf(SERVICE_TYPES, 'ClusterIP'), 'ClusterIP', tolerate, 'ClusterIP');
  if (type === 'ExternalName') return undefined;
  // Another service proxy's Service (kube-proxy leaves these alone too, whatever the value).
  if (metadata.get('labels').get(SERVICE_PROXY_NAME_LABEL).value !== undefined) return undefined;
  const clusterIPs = readClusterIPs(spec);
  if (clusterIPs === 'None') return undefined;
  const ports = readServicePorts(spec.get('ports'), type, tolerate);
  const externallyReachable = type === 'NodePort' || type === 'LoadBalancer';
  const policy = (field: Field) => tolerant(() => field.oneOf(['Cluster', 'Local'] as const, 'Cluster'), 'Cluster' as const, tolerate, 'Cluster');
  const affinity = tolerant(() => spec.get('sessionAffinity').oneOf(['None', 'ClientIP'] as const, 'None'), 'None' as const, tolerate, 'no affinity');
  const sourceRanges = spec.get('loadBalancerSourceRanges');
  const annotation = metadata.get('annotations').get(SOURCE_RANGES_ANNOTATION);
  const balancing = metadata.get('annotations').get(BALANCING_ANNOTATION);
  return {
    namespace,
    name,
    type,
    clusterIPs,
    ports,
    externalIPs: tolerantEntries(spec.get('externalIPs'), (ip) => ip.ip(), tolerate),
    loadBalancerIPs: type === 'LoadBalancer' ? readIngressIPs(root.get('status').get('loadBalancer').get('ingress'), tolerate) : [],
    loadBalancerSourceRanges: sourceRanges.absent || (Array.isArray(sourceRanges.value) && sourceRanges.value.length === 0)
      ? (annotation.absent ? undefined : readAnnotationRanges(annotation, tolerate))
      : tolerantEntries(sourceRanges, (cidr) => cidr.cidr({ mask: true }), tolerate),
    externalTrafficPolicy: externallyReachable ? policy(spec.get('externalTrafficPolicy')) : 'Cluster',
    internalTrafficPolicy: policy(spec.get('internalTrafficPolicy')),
    affinitySeconds: affinity === 'ClientIP'
      ? tolerant(() => spec.get('sessionAffinityConfig').get('clientIP').get('timeoutSeconds').integer(1, 86400, 10800), 10800, tolerate, '10800 seconds')
      : 0,
    healthCheckNodePort: tolerant(() => spec.get('healthCheckNodePort').integer(0, 65535, 0), 0, tolerate, 'no health-check node port'),
    selector: readSelector(spec.get('selector')),
    publishNotReadyAddresses: tolerant(() => spec.get('publishNotReadyAddresses').boolean(false), false, tolerate, 'false'),
    balancing: balancing.absent ? undefined : tolerant(() => balancing.oneOf(['least-busy', 'uniform'] as const), undefined, tolerate, 'the agent\'s --balancing'),
  };
}

function readClusterIPs(spec: Field): string[] | 'None' {
  const list = spec.get('clusterIPs');
  const single = spec.get('clusterIP');
  const texts = list.absent ? (single.absent ? [] : [single]) : list.list();
  if (texts.length === 0) single.fail('a Service needs a cluster IP (or None for headless)');
  if (texts.some((field) => field.value === 'None')) return 'None';
  const ips = texts.map((field) => field.ip());
  const families = new Set(ips.map(familyOf));
  if (families.size !== ips.length) (list.absent ? single : list).fail('must hold at most one IP per family');
  return ips;
}

/** The Service's ports; one that does not read (or repeats an earlier name and protocol) is skipped, but a Service needs one. */
function readServicePorts(ports: Field, type: ServiceType, tolerate: Tolerate): ServicePort[] {
  const items = ports.list();
  if (items.length === 0) ports.fail('a Service needs at least one port');
  const seen = new Set<string>();
  const read: ServicePort[] = [];
  const skipped: FieldError[] = [];
  for (const port of items) {
    try {
      const nameField = port.get('name');
      const name = nameField.absent ? '' : nameField.string();
      if (name !== '' && (name.length > 63 || !DNS_LABEL.test(name))) nameField.fail('must be a DNS label');
      if (name === '' && items.length > 1) nameField.fail('must be set when a Service has several ports');
      const protocol = port.get('protocol').oneOf(PROTOCOLS, 'TCP');
      const key = `${name}/${protocol}`;
      if (seen.has(key)) port.fail('duplicates an earlier port name and protocol');
      seen.add(key);
      const nodePortField = port.get('nodePort');
      // A NodePort Service's port without a node port has none (kube-proxy programs node ports that are set).
      const nodePort = type === 'ClusterIP' ? 0 : tolerant(() => nodePortField.integer(1, 65535, 0), 0, tolerate, 'no node port');
      if (type === 'NodePort' && nodePort === 0) tolerate(new FieldError(nodePortField.path, 'a NodePort Service\'s port needs a node port, got none (ignored: this port has none)'));
      const number = port.get('port').integer(1, 65535);
      const targetField = port.get('targetPort');
      const targetPort = typeof targetField.value === 'string' && !/^\d+$/.test(targetField.value)
        ? readName(targetField, DNS_LABEL, 15)
        : targetField.absent ? number : typeof targetField.value === 'string' ? new Field(Number(targetField.value), targetField.path).integer(1, 65535) : targetField.integer(1, 65535);
      read.push({ name, protocol, port: number, nodePort, targetPort });
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      skipped.push(error);
    }
  }
  // A port's error is a warning while another port is usable; without one, the first is the Service's error.
  if (read.length === 0) throw skipped[0]!;
  for (const error of skipped) tolerate(new FieldError(error.field, `${error.detail} (ignored: this port skipped, the others used)`));
  return read;
}

function readIngressIPs(ingress: Field, tolerate: Tolerate): string[] {
  // ipMode Proxy means the load balancer proxies itself; the node must not capture the IP.
  return tolerantEntries(ingress, (entry) => (!entry.get('ip').absent && entry.get('ipMode').oneOf(['VIP', 'Proxy'] as const, 'VIP') === 'VIP' ? [entry.get('ip').ip()] : []), tolerate).flat();
}

function readAnnotationRanges(annotation: Field, tolerate: Tolerate): string[] {
  const texts = tolerant(() => annotation.string().split(','), [], tolerate, 'no source ranges read from it').map((text) => text.trim()).filter(Boolean);
  return texts.flatMap((text) => tolerant(() => [new Field(text, annotation.path).cidr({ mask: true })], [], tolerate, 'this range skipped, the others used'));
}

/**
 * The slice's last-change-trigger-time in ms since the epoch; undefined when it has none or one that is
 * not RFC 3339 (kube-proxy then measures nothing either). Not part of the slice: only the agent's
 * network-programming latency reads it, and a slice that differs only in it has the same rules.
 */
function readTriggerTime(root: Field): number | undefined {
  const value = root.get('metadata').get('annotations').get(LAST_CHANGE_TRIGGER_TIME_ANNOTATION).value;
  if (typeof value !== 'string' || !RFC3339.test(value)) return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : time;
}

/** An EndpointSlice, or undefined for FQDN slices (not proxied). */
function readEndpointSlice(root: Field): EndpointSlice | undefined {
  const { namespace, name, metadata } = readMetadata(root, DNS_SUBDOMAIN, 253);
  const addressType = root.get('addressType').oneOf(['IPv4', 'IPv6', 'FQDN'] as const);
  if (addressType === 'FQDN') return undefined;
  const labels = metadata.get('labels');
  const serviceName = readName(labels.get(SERVICE_NAME_LABEL), DNS_LABEL, 63);
  const ports: EndpointPort[] = root.get('ports').list()
    // A port without a number means "all ports"; kube-proxy has no way to proxy that either.
    .filter((port) => !port.get('port').absent)
    .map((port) => {
      const nameField = port.get('name');
      const portName = nameField.absent ? '' : nameField.string();
      if (portName !== '' && (portName.length > 63 || !DNS_LABEL.test(portName))) nameField.fail('must be a DNS label');
      return { name: portName, protocol: port.get('protocol').oneOf(PROTOCOLS, 'TCP'), port: port.get('port').integer(1, 65535) };
    });
  const endpoints = root.get('endpoints').list().map((endpoint) => readEndpoint(endpoint, addressType));
  return { namespace, name, serviceName, source: 'EndpointSlice', family: addressType, ports, endpoints };
}

function readEndpoint(endpoint: Field, family: IPFamily): Endpoint {
  const addresses = endpoint.get('addresses').list();
  // The API allows several addresses but every consumer, kube-proxy included, uses the first.
  const first = addresses[0] ?? endpoint.get('addresses').fail('must hold at least one address');
  const ip = first.ip();
  if (familyOf(ip) !== family) first.fail(`must be an ${family} address like the slice's addressType`);
  const conditions = endpoint.get('conditions');
  const ready = conditions.get('ready').boolean(true);
  const nodeNameField = endpoint.get('nodeName');
  const hints = endpoint.get('hints');
  const names = (list: Field) => list.list().map((entry) => entry.get('name').string());
  return {
    ip,
    nodeName: nodeNameField.absent ? '' : readName(nodeNameField, DNS_SUBDOMAIN, 253),
    conditions: sharedConditions(ready, conditions.get('serving').boolean(ready), conditions.get('terminating').boolean(false)),
    hints: hints.absent ? NO_HINTS : { zones: names(hints.get('forZones')), nodes: names(hints.get('forNodes')) },
  };
}

// The model is read-only: 100,000 endpoints share the eight possible conditions and the empty hints,
// rather than each holding objects of its own (fewer objects for the garbage collector to copy).
const CONDITIONS = [false, true].flatMap((ready) => [false, true].flatMap((serving) => [false, true].map((terminating) => ({ ready, serving, terminating }))));
const sharedConditions = (ready: boolean, serving: boolean, terminating: boolean): EndpointConditions => CONDITIONS[(ready ? 4 : 0) + (serving ? 2 : 0) + (terminating ? 1 : 0)]!;
const NO_HINTS: EndpointHints = { zones: [], nodes: [] };

function readNode(root: Field): Node {
  const metadata = root.get('metadata');
  const name = readName(metadata.get('name'), DNS_SUBDOMAIN, 253);
  const addresses = root.get('status').get('addresses').list().map((address) => ({
    type: address.get('type').string(''),
    ip: address.get('type').value === 'InternalIP' || address.get('type').value === 'ExternalIP'
      ? address.get('address').ip()
      : '',
  }));
  const spec = root.get('spec');
  const podCIDRs = spec.get('podCIDRs').absent
    ? (spec.get('podCIDR').absent ? [] : [spec.get('podCIDR').cidr()])
    : spec.get('podCIDRs').list().map((cidr) => cidr.cidr());
  if (new Set(podCIDRs.map(familyOf)).size !== podCIDRs.length) spec.get('podCIDRs').fail('must hold at most one CIDR per family');
  const zone = metadata.get('labels').get(ZONE_LABEL);
  return {
    name,
    internalIPs: addresses.filter((a) => a.type === 'InternalIP').map((a) => a.ip),
    externalIPs: addresses.filter((a) => a.type === 'ExternalIP').map((a) => a.ip),
    podCIDRs,
    zone: zone.absent ? '' : zone.string(),
  };
}

function readSelector(selector: Field): Record<string, string> | undefined {
  if (selector.absent) return undefined;
  if (!isRecord(selector.value)) selector.fail('must be a map of labels');
  return Object.fromEntries(Object.keys(selector.value).map((key) => [key, selector.get(key).string()]));
}

function readPod(root: Field): Pod {
  const { namespace, name, metadata } = readMetadata(root, DNS_SUBDOMAIN, 253);
  const labels = metadata.get('labels');
  const status = root.get('status');
  const spec = root.get('spec');
  const podIPs = status.get('podIPs');
  const ips = podIPs.absent
    ? (status.get('podIP').absent ? [] : [status.get('podIP').ip()])
    : podIPs.list().map((entry) => entry.get('ip').ip());
  const phase = status.get('phase').string('Pending');
  const readyCondition = status.get('conditions').list().find((condition) => condition.get('type').value === 'Ready');
  const nodeNameField = spec.get('nodeName');
  return {
    namespace,
    name,
    labels: labels.absent ? {} : Object.fromEntries(Object.keys(labels.value as object).map((key) => [key, labels.get(key).string()])),
    ips,
    nodeName: nodeNameField.absent ? '' : readName(nodeNameField, DNS_SUBDOMAIN, 253),
    ready: readyCondition?.get('status').value === 'True',
    terminating: !metadata.get('deletionTimestamp').absent,
    terminal: phase === 'Succeeded' || phase === 'Failed',
    containerPorts: [...spec.get('initContainers').list(), ...spec.get('containers').list()].flatMap((container) => container.get('ports').list())
      .filter((port) => !port.get('name').absent)
      .map((port) => ({ name: port.get('name').string(), port: port.get('containerPort').integer(1, 65535), protocol: port.get('protocol').oneOf(PROTOCOLS, 'TCP') })),
  };
}

function readServiceCIDR(root: Field): ServiceCIDR {
  const name = readName(root.get('metadata').get('name'), DNS_SUBDOMAIN, 253);
  return { name, cidrs: root.get('spec').get('cidrs').list().map((cidr) => cidr.cidr()) };
}

/** A one-line description of a model error: which object, which field, what was wrong. */
export function describeModelError(error: ModelError): string {
  return `skipped ${error.kind || 'object'} ${error.object}: ${error.message}`;
}
