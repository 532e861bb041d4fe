// Point Dawn's Vulkan loader at a software driver when there is no GPU; it reads
// VK_ICD_FILENAMES when `create()` makes the instance, so this only has to run first.
import { vulkanIcdEnv } from '../../scripts/vulkan-env.mjs';

Object.assign(process.env, vulkanIcdEnv());
