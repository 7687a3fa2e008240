/* See xdr_bounded.h. Compiled without the redirect macros: the calls below
 * are libtirpc's own routines. */
#include "xdr_bounded.h"

#include <pthread.h>
#include <stdatomic.h>

static const struct xdr_ops* mem_ops[2];
static pthread_once_t mem_ops_once = PTHREAD_ONCE_INIT;
static atomic_ulong refused;

/* xdrmem picks one of two operation vectors by the buffer's alignment;
 * learn both once so a stream can be recognised as xdrmem. */
static void learn_mem_ops(void) {
  static char buf[8] __attribute__((aligned(8)));
  XDR x;
  xdrmem_create(&x, buf, 4, XDR_DECODE);
  mem_ops[0] = x.x_ops;
  xdrmem_create(&x, buf + 1, 4, XDR_DECODE);
  mem_ops[1] = x.x_ops;
}

long nfs4xdr_remaining(XDR* xdrs) {
  pthread_once(&mem_ops_once, learn_mem_ops);
  if (xdrs->x_op != XDR_DECODE) return -1;
  if (xdrs->x_ops != mem_ops[0] && xdrs->x_ops != mem_ops[1]) return -1;
  /* xdrmem keeps the bytes not yet consumed in x_handy. */
  return (long)xdrs->x_handy;
}

unsigned long nfs4xdr_refused(void) { return atomic_load(&refused); }

/* The length at the stream's position, not consumed; 0 if the stream is not
 * a bounded decode (nothing to check), 1 if `len` was read, -1 if there are
 * not even 4 bytes. */
static int peek_length(XDR* xdrs, u_int* len, long* left) {
  *left = nfs4xdr_remaining(xdrs);
  if (*left < 0) return 0;
  if (*left < 4) return -1;
  u_int pos = XDR_GETPOS(xdrs);
  if (!xdr_u_int(xdrs, len) || !XDR_SETPOS(xdrs, pos)) return -1;
  *left -= 4;
  return 1;
}

static bool_t refuse(void) {
  atomic_fetch_add(&refused, 1);
  return FALSE;
}

bool_t nfs4xdr_bounded_array(XDR* xdrs, char** addrp, u_int* sizep,
                             u_int maxsize, u_int elsize, xdrproc_t elproc) {
  u_int n;
  long left;
  int r = peek_length(xdrs, &n, &left);
  if (r < 0) return refuse();
  /* Every element takes at least 4 bytes on the wire. */
  if (r > 0 && (n > maxsize || (unsigned long)n > (unsigned long)left / 4)) {
    return refuse();
  }
  return xdr_array(xdrs, addrp, sizep, maxsize, elsize, elproc);
}

bool_t nfs4xdr_bounded_bytes(XDR* xdrs, char** cpp, u_int* sizep,
                             u_int maxsize) {
  u_int n;
  long left;
  int r = peek_length(xdrs, &n, &left);
  if (r < 0) return refuse();
  if (r > 0 && (n > maxsize || (unsigned long)n > (unsigned long)left)) {
    return refuse();
  }
  return xdr_bytes(xdrs, cpp, sizep, maxsize);
}

bool_t nfs4xdr_bounded_string(XDR* xdrs, char** cpp, u_int maxsize) {
  u_int n;
  long left;
  int r = peek_length(xdrs, &n, &left);
  if (r < 0) return refuse();
  if (r > 0 && (n > maxsize || (unsigned long)n > (unsigned long)left)) {
    return refuse();
  }
  return xdr_string(xdrs, cpp, maxsize);
}
