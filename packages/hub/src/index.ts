export { blobPath, gitBlobSha1, repoStorage, sha256Hex, snapshotDir } from "./cache.js";
export {
  type DataFormat,
  type DatasetFile,
  type DatasetFiles,
  type DatasetFilesOptions,
  fetchDatasetFiles,
  PARQUET_EXPORT,
} from "./datasets.js";
export {
  DEFAULT_ENDPOINT,
  defaultCacheDir,
  defaultToken,
  type HubOptions,
  type HubSettings,
  hfHome,
  hubSettings,
} from "./env.js";
export { globMatch } from "./glob.js";
export {
  type HubSource,
  type PretrainedKind,
  type ResolvedPretrained,
  type ResolveOptions,
  resolvePretrained,
} from "./pretrained.js";
export {
  describeRef,
  type HubRef,
  hubRef,
  isCommitSha,
  isRepoId,
  parseHubId,
  type RepoType,
  repoFolderName,
} from "./repo-id.js";
