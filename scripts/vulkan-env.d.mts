// Types for vulkan-env.mjs, so TypeScript (tests) can import it.
export declare function listVulkanIcds(): string[];
export declare function findLavapipeIcd(): string | undefined;
export declare function hasHardwareGpu(): boolean;
export declare function hasVulkanLoader(): boolean;
export declare function vulkanIcdEnv(env?: NodeJS.ProcessEnv): { VK_ICD_FILENAMES?: string };
