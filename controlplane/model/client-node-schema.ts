// The field table of one API type as client-node's generated model classes hold it: only for writing
// and checking api-schema.ts, never imported by a command (the models are ~700 modules).
import type { TypeFields } from './unknown-fields.js';

interface ModelClass {
  attributeTypeMap: { baseName: string; type: string }[];
}

/** A reader of one type's fields (JSON name → type) from client-node's models; undefined for non-model types. */
export async function clientNodeFields(): Promise<(type: string) => TypeFields | undefined> {
  const models = await import('@kubernetes/client-node/dist/gen/models/all.js') as unknown as Record<string, Partial<ModelClass> | undefined>;
  return (type) => {
    const model = Object.hasOwn(models, type) ? models[type] : undefined;
    return Array.isArray(model?.attributeTypeMap)
      ? Object.fromEntries(model.attributeTypeMap.map((attribute) => [attribute.baseName, attribute.type]))
      : undefined;
  };
}
