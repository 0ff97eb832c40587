export { FunctionService } from './function-service.js';
export {
  type ArgsOf,
  type BuilderOptions,
  type CallOptions,
  type MeshFunction,
  ServiceBuilder,
  type ServiceOptions,
} from './service-builder.js';
