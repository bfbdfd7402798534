/** A handler module whose initialisation fails, as a missing model or bad configuration would. */
throw new Error('cannot initialise: configuration is missing');
export const handler = async (): Promise<void> => undefined;
