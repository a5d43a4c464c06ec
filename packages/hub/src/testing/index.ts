/**
 * Offline test infrastructure for the Hub, for this package's tests and other packages' (`@hippocrates/hub/testing`):
 * a loopback Hub server and a per-test fixture around it, a Python-layout cache writer, and the `../shared/data` benchmark files laid out as the
 * real Hub repositories hold them.
 */

export {
  augtomaMedmcqaRepo,
  augtomaMedqaRepo,
  benchmarkRepos,
  bigbioPubmedqaRepo,
  medmcqaRepo,
  medqaHfRepo,
  mmluRepo,
  objectKeysInOrder,
  type PubmedqaFold0,
  pubmedqaRepo,
  writeHfParquet,
} from "./benchmarks.js";
export { type CachedRepo, type CacheFixtureOptions, writeCachedRepo } from "./cache-fixture.js";
export { type HubFixture, hubFixture, saveEnv } from "./fixture.js";
export { type RecordedTask, recordingProgress } from "./progress.js";
export {
  lfsPointer,
  type PreparedFile,
  type PreparedRepo,
  type PreparedRevision,
  prepareFile,
  prepareRepo,
  type RepoFileSpec,
  type RepoSpec,
} from "./repo.js";
export {
  type Fault,
  type FaultKind,
  type FaultSpec,
  type HubServer,
  type HubServerOptions,
  type RecordedRequest,
  startHubServer,
} from "./server.js";
