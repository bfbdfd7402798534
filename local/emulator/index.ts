/** The embedded Kinesis emulator (kinesalite in a worker thread) and the trimmer of consumed records. */
export * from './emulator';
export * from './trimmer';
