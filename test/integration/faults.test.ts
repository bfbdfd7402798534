/**
 * The fault suites (test/helpers/fault-suites.ts) with the pipeline on the Kinesis API over
 * HTTP, as external clients use it and as on AWS.
 */
import { faultSuites } from '../helpers/fault-suites';

faultSuites('http');
