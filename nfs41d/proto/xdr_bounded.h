/* Length-bounded replacements for libtirpc's xdr_array, xdr_bytes and
 * xdr_string, for the rpcgen-generated NFSv4.1 routines (nfs4xdr).
 *
 * libtirpc's versions allocate the buffer a length field asks for (up to the
 * .x bound, which is ~0 for unbounded arrays) before checking that the bytes
 * are there: a 20-byte record saying "0xFFFFFFF0 elements" makes it calloc
 * gigabytes. These wrappers, when decoding from a memory stream (xdrmem, what
 * rpc::XdrDecoder uses), first read the length without consuming it and
 * refuse it unless the rest of the record can hold it: a byte string needs
 * `len` bytes, an array at least 4 bytes per element (every XDR item is a
 * multiple of 4 bytes, none is empty). Only then do they call libtirpc. The
 * record itself is bounded by the server's maximum record size (the
 * negotiated ca_maxrequestsize plus the RPC header), so no decode allocates
 * more than a few times the bytes it received.
 *
 * Encoding, freeing and other stream types go straight to libtirpc.
 *
 * nfs41d/proto/CMakeLists.txt compiles the generated C with
 * `-include xdr_bounded.h -DNFS4XDR_BOUNDED_REDIRECT`, so the generated file
 * is never edited: its calls are renamed by the macros below. */
#ifndef NFS41D_PROTO_XDR_BOUNDED_H_
#define NFS41D_PROTO_XDR_BOUNDED_H_

#include <rpc/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

bool_t nfs4xdr_bounded_array(XDR* xdrs, char** addrp, u_int* sizep,
                             u_int maxsize, u_int elsize, xdrproc_t elproc);
bool_t nfs4xdr_bounded_bytes(XDR* xdrs, char** cpp, u_int* sizep,
                             u_int maxsize);
bool_t nfs4xdr_bounded_string(XDR* xdrs, char** cpp, u_int maxsize);

/* Bytes left in a decoding memory stream, or -1 if `xdrs` is not one (then
 * no bound applies beyond libtirpc's own). */
long nfs4xdr_remaining(XDR* xdrs);

/* How many decodes the bounds refused since start (for tests). */
unsigned long nfs4xdr_refused(void);

#ifdef __cplusplus
}
#endif

#ifdef NFS4XDR_BOUNDED_REDIRECT
#define xdr_array nfs4xdr_bounded_array
#define xdr_bytes nfs4xdr_bounded_bytes
#define xdr_string nfs4xdr_bounded_string
#endif

#endif /* NFS41D_PROTO_XDR_BOUNDED_H_ */
