"""Generated gRPC stubs of the maestromotif.v1 API (see protos/). Do not edit."""
