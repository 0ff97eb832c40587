export { FunctionService } from './function-service.js';
export type { CallOptions, MeshFunction, ServiceOptions } from './mesh-function.js';
export { type ArgsOf, type BuilderOptions, ServiceBuilder } from './service-builder.js';
