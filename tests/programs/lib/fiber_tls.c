/* A library with compiled thread-local variables of its own, linked by
 * t_fiber_tls (DT_NEEDED, so its block is in static TLS as a program's
 * libraries' blocks are). Accessed through functions, as the library's
 * own code would: the general-dynamic TLS model, __tls_get_addr. */
#define _GNU_SOURCE

__thread long lib_tls_data = 4242;  /* .tdata */
__thread long lib_tls_zero[8];      /* .tbss */

__attribute__((visibility("default"))) long *lib_tls_data_addr(void) { return &lib_tls_data; }
__attribute__((visibility("default"))) long *lib_tls_zero_addr(void) { return lib_tls_zero; }
