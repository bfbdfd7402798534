/** The local event source mapping runner: what the pipeline, the home and the Greengrass host use. */
export * from './event-source-mapping-runner';
