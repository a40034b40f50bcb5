/* The relay's per-datagram system calls and SRTP, without Python objects in between.
 *
 * Written by hand because no kept library does this for Python: the socket module has
 * no recvmmsg, and pylibsrtp copies every packet through cffi buffers. libsrtp itself
 * is the copy pylibsrtp ships: its srtp_protect/srtp_unprotect addresses and a
 * session's srtp_t come from pylibsrtp at run time (hooks/srtp.py), so nothing here
 * links against a system library. Payloads are never looked at.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define DATAGRAM 2048 /* RTP, RTCP, STUN and DTLS records stay below the path MTU */
#define TRAILER 160   /* libsrtp's SRTP_MAX_TRAILER_LEN: tag and MKI */

typedef int (*srtp_function)(void *session, void *packet, int *length);

static srtp_function srtp_protect_function, srtp_unprotect_function;
static unsigned char receive_buffers[BATCH][DATAGRAM];
static unsigned char send_buffer[DATAGRAM + TRAILER];

static PyObject *
set_srtp_functions(PyObject *self, PyObject *args)
{
    unsigned long long protect, unprotect;
    if (!PyArg_ParseTuple(args, "KK", &protect, &unprotect))
        return NULL;
    srtp_protect_function = (srtp_function)(uintptr_t)protect;
    srtp_unprotect_function = (srtp_function)(uintptr_t)unprotect;
    Py_RETURN_NONE;
}

static PyObject *
address_tuple(struct sockaddr_storage *address)
{
    char host[INET6_ADDRSTRLEN];
    if (address->ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return Py_BuildValue("(sHkk)", host, ntohs(a->sin6_port),
                             (unsigned long)ntohl(a->sin6_flowinfo),
                             (unsigned long)a->sin6_scope_id);
    }
    struct sockaddr_in *a = (struct sockaddr_in *)address;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return Py_BuildValue("(sH)", host, ntohs(a->sin_port));
}

/* receive(fd, session) -> list: every datagram waiting on the socket, up to BATCH.
 * SRTP packets (RFC 7983: first byte 128-191; not RTCP, whose packet types are
 * 192-208) come as bytes: decrypted in place when session is not 0 (one that fails
 * authentication is dropped), else as they came. Everything else comes as
 * (bytes, address). */
static PyObject *
receive_datagrams(PyObject *self, PyObject *args)
{
    int fd;
    unsigned long long session;
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_storage addresses[BATCH];
    if (!PyArg_ParseTuple(args, "iK", &fd, &session))
        return NULL;
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        vectors[i].iov_base = receive_buffers[i];
        vectors[i].iov_len = DATAGRAM;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
    }
    /* The GIL stays held: the call never blocks, and the buffers are shared. */
    int count = recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
    if (count < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (int i = 0; i < count; i++) {
        unsigned char *data = receive_buffers[i];
        int length = (int)messages[i].msg_len;
        PyObject *item;
        if (length >= 12 && data[0] > 127 && data[0] < 192
            && !(data[1] > 191 && data[1] < 209)) {
            if (session
                && srtp_unprotect_function((void *)(uintptr_t)session, data, &length) != 0)
                continue;
            item = PyBytes_FromStringAndSize((char *)data, length);
        } else {
            PyObject *address = address_tuple(&addresses[i]);
            item = address ? Py_BuildValue("(y#N)", (char *)data, (Py_ssize_t)length, address)
                           : NULL;
        }
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    return result;
}

/* send_rtp(fd, session, packet, address) -> None or bytes: SRTP-protects one RTP packet
 * and sends it to address (a sockaddr from sockaddr()). Returns None when the socket
 * took it, else the protected packet, for the caller to send the slow way (a full
 * socket buffer, an ICMP error). */
static PyObject *
send_rtp(PyObject *self, PyObject *args)
{
    int fd;
    unsigned long long session;
    Py_buffer packet, address;
    if (!PyArg_ParseTuple(args, "iKy*y*", &fd, &session, &packet, &address))
        return NULL;
    PyObject *result = NULL;
    if (packet.len > DATAGRAM || packet.len < 12) {
        PyErr_SetString(PyExc_ValueError, "not an RTP packet of a datagram's size");
        goto done;
    }
    memcpy(send_buffer, packet.buf, packet.len);
    int length = (int)packet.len;
    if (srtp_protect_function((void *)(uintptr_t)session, send_buffer, &length) != 0) {
        PyErr_SetString(PyExc_ValueError, "SRTP protection failed");
        goto done;
    }
    if (sendto(fd, send_buffer, length, MSG_DONTWAIT, (struct sockaddr *)address.buf,
               (socklen_t)address.len) == length) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        result = PyBytes_FromStringAndSize((char *)send_buffer, length);
    }
done:
    PyBuffer_Release(&packet);
    PyBuffer_Release(&address);
    return result;
}

/* sockaddr(host, port) -> bytes: the address in the form send() takes. */
static PyObject *
sockaddr(PyObject *self, PyObject *args)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si", &host, &port))
        return NULL;
    struct sockaddr_in6 v6;
    struct sockaddr_in v4;
    memset(&v6, 0, sizeof v6);
    memset(&v4, 0, sizeof v4);
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons((unsigned short)port);
        return PyBytes_FromStringAndSize((char *)&v4, sizeof v4);
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((unsigned short)port);
        return PyBytes_FromStringAndSize((char *)&v6, sizeof v6);
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
    return NULL;
}

static PyMethodDef methods[] = {
    {"set_srtp_functions", set_srtp_functions, METH_VARARGS, NULL},
    {"receive", receive_datagrams, METH_VARARGS, NULL},
    {"send_rtp", send_rtp, METH_VARARGS, NULL},
    {"sockaddr", sockaddr, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_datagrams", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__datagrams(void)
{
    return PyModule_Create(&module);
}
