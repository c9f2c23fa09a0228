// UpdateTaskRequest.resources: a google.protobuf.Any that containerd's typeurl fills with the OCI runtime-spec
// LinuxResources marshalled as JSON (typeurl registers the specs types under types.containerd.io; ctr task
// update --memory-limit/--cpu-quota/--resources and CRI's UpdateContainerResources send this). The JSON goes to
// the guest agent's UpdateContainer as is, once it is known to be a JSON object of bounded size.

import { ShimError } from './errors.js';
import type { Any } from './proto.js';

/** containerd's typeurl name of specs.LinuxResources */
export const LINUX_RESOURCES_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';
/** agent.proto UpdateContainerRequest.resources_json: at most 1 MiB */
const MAX_RESOURCES_JSON = 1 << 20;

/** The LinuxResources JSON of an UpdateTaskRequest, or ShimError INVALID_ARGUMENT saying what is wrong with it. */
export function linuxResourcesJson(resources: Any | null | undefined): Buffer {
  if (!resources || (resources.type_url === '' && resources.value.length === 0)) {
    throw new ShimError('INVALID_ARGUMENT', `update needs resources (${LINUX_RESOURCES_URL})`);
  }
  if (resources.type_url !== LINUX_RESOURCES_URL) {
    throw new ShimError('INVALID_ARGUMENT', `resources of type ${JSON.stringify(resources.type_url.slice(0, 200))} are not supported by kata-ts: send ${LINUX_RESOURCES_URL}`);
  }
  if (resources.value.length > MAX_RESOURCES_JSON) {
    throw new ShimError('INVALID_ARGUMENT', `LinuxResources of ${resources.value.length} bytes exceed the ${MAX_RESOURCES_JSON}-byte limit`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(resources.value).toString('utf8'));
  } catch (e) {
    throw new ShimError('INVALID_ARGUMENT', `LinuxResources is not JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ShimError('INVALID_ARGUMENT', 'LinuxResources must be a JSON object (config.json linux.resources)');
  }
  return Buffer.from(JSON.stringify(parsed));
}
