/* The relay's per-datagram system calls and SRTP, without Python objects in between
 * (and the relay benchmark's load generator's: send_rtp_frame, count_rtp, count_rtp_ready).
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
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH 32
#define DATAGRAM 2048 /* RTP, RTCP, STUN and DTLS records stay below the path MTU */
#define TRAILER 160   /* libsrtp's SRTP_MAX_TRAILER_LEN: tag and MKI */

typedef int (*srtp_function)(void *session, void *packet, int *length);

static srtp_function srtp_protect_function, srtp_unprotect_function;
static unsigned char receive_buffers[BATCH][DATAGRAM];
static unsigned char send_buffer[DATAGRAM + TRAILER];
static unsigned char frame_buffers[BATCH][DATAGRAM + TRAILER];

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
        if (messages[i].msg_hdr.msg_flags & MSG_TRUNC)
            continue;  /* cut to the buffer: no use to SRTP, STUN or DTLS */
        if (length >= 12 && data[0] > 127 && data[0] < 192
            && !(data[1] > 191 && data[1] < 209)) {
            if (session && (!srtp_unprotect_function
                            || srtp_unprotect_function((void *)(uintptr_t)session, data, &length) != 0))
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
    if (!session || !srtp_protect_function) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
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

/* send_rtp_frame(fd, session, address, header, payloads, sequence, segment) -> int: one
 * frame's RTP packets, SRTP-protected, to address with one sendmmsg per BATCH packets.
 * header is the RTP header with its extensions as every packet of the frame carries it;
 * each packet gets its sequence number from `sequence` up (modulo 2^16), the last one the
 * marker bit. With segment true, packets of one size (but the last, which may be shorter)
 * go as one UDP GSO message (UDP_SEGMENT, Linux 4.18): the kernel passes one buffer down
 * its stack and cuts it into the same datagrams where they arrive, which on the loopback
 * interface spares the sender most of its per-packet kernel work. Returns how many
 * packets the socket did not take (not retried, as send_rtp's caller does not either).
 * For the relay benchmark's load generator: a publisher's packets cost no system call and
 * no Python object each. */
static PyObject *
send_rtp_frame(PyObject *self, PyObject *args)
{
    int fd, sequence, segment;
    unsigned long long session;
    Py_buffer address, header;
    PyObject *payloads;
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    int lengths[BATCH];
    union {
        char buffer[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    if (!PyArg_ParseTuple(args, "iKy*y*Oip", &fd, &session, &address, &header, &payloads,
                          &sequence, &segment))
        return NULL;
    PyObject *sequence_of = PySequence_Fast(payloads, "payloads must be a sequence");
    long unsent = 0;
    if (sequence_of == NULL)
        goto done;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(sequence_of);
    if (header.len < 12) {
        PyErr_SetString(PyExc_ValueError, "not an RTP header");
        goto done;
    }
    if (!session || !srtp_protect_function) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        goto done;
    }
    for (Py_ssize_t first = 0; first < total; first += BATCH) {
        int count = total - first < BATCH ? (int)(total - first) : BATCH;
        int same = 1; /* every packet but the last as long as the first, the last no longer */
        for (int i = 0; i < count; i++) {
            PyObject *payload = PySequence_Fast_GET_ITEM(sequence_of, first + i);
            if (!PyBytes_Check(payload)) {
                PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
                goto done;
            }
            Py_ssize_t size = PyBytes_GET_SIZE(payload);
            if (header.len + size > DATAGRAM) {
                PyErr_SetString(PyExc_ValueError, "not an RTP packet of a datagram's size");
                goto done;
            }
            unsigned char *packet = frame_buffers[i];
            memcpy(packet, header.buf, header.len);
            memcpy(packet + header.len, PyBytes_AS_STRING(payload), size);
            unsigned int number = (unsigned int)(sequence + first + i) & 0xFFFF;
            packet[1] = (packet[1] & 0x7F) | (first + i == total - 1 ? 0x80 : 0);
            packet[2] = number >> 8;
            packet[3] = number & 0xFF;
            int length = (int)(header.len + size);
            if (srtp_protect_function((void *)(uintptr_t)session, packet, &length) != 0) {
                PyErr_SetString(PyExc_ValueError, "SRTP protection failed");
                goto done;
            }
            vectors[i].iov_base = packet;
            vectors[i].iov_len = length;
            lengths[i] = length;
            if (i > 0 && (lengths[i] > lengths[0] || (i < count - 1 && lengths[i] != lengths[0])))
                same = 0;
        }
        memset(messages, 0, sizeof messages);
        int batches = count;
        if (segment && same && count > 1) {
            struct cmsghdr *header_of = (struct cmsghdr *)control.buffer;
            header_of->cmsg_level = IPPROTO_UDP;
            header_of->cmsg_type = UDP_SEGMENT;
            header_of->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t size = (uint16_t)lengths[0];
            memcpy(CMSG_DATA(header_of), &size, sizeof size);
            messages[0].msg_hdr.msg_iov = vectors;
            messages[0].msg_hdr.msg_iovlen = count;
            messages[0].msg_hdr.msg_control = control.buffer;
            messages[0].msg_hdr.msg_controllen = sizeof control.buffer;
            batches = 1;
        } else {
            for (int i = 0; i < count; i++) {
                messages[i].msg_hdr.msg_iov = &vectors[i];
                messages[i].msg_hdr.msg_iovlen = 1;
            }
        }
        for (int i = 0; i < batches; i++) {
            messages[i].msg_hdr.msg_name = address.buf;
            messages[i].msg_hdr.msg_namelen = (socklen_t)address.len;
        }
        /* A message the socket refuses is counted and skipped, the rest still go. */
        for (int sent = 0; sent < batches;) {
            int taken = sendmmsg(fd, messages + sent, batches - sent, MSG_DONTWAIT);
            if (taken > 0) {
                sent += taken;
            } else {
                unsent += batches == 1 ? count : 1;
                sent++;
            }
        }
    }
done:
    Py_XDECREF(sequence_of);
    PyBuffer_Release(&address);
    PyBuffer_Release(&header);
    return PyErr_Occurred() ? NULL : PyLong_FromLong(unsent);
}

/* Reads every datagram waiting on fd (in batches of BATCH) and counts the SRTP ones (as
 * receive() tells them apart) into counts: packets, marker bits and the highest extended
 * sequence number (-1 before the first), without decrypting and without a Python object
 * per packet. Everything else is appended to *others (made when first needed) as
 * (bytes, address), or (fd, bytes, address) when with_fd is set. -1 with an exception set. */
static int
count_socket(int fd, int64_t *counts, PyObject **others, int with_fd)
{
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_storage addresses[BATCH];
    int count = BATCH;
    while (count == BATCH) {
        memset(messages, 0, sizeof messages);
        for (int i = 0; i < BATCH; i++) {
            vectors[i].iov_base = receive_buffers[i];
            vectors[i].iov_len = DATAGRAM;
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &addresses[i];
            messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
        }
        count = recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
        if (count < 0) {
            /* A socket closed under the poller reads as an error: nothing to count. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || with_fd)
                return 0;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        for (int i = 0; i < count; i++) {
            unsigned char *data = receive_buffers[i];
            int length = (int)messages[i].msg_len;
            if (length >= 12 && data[0] > 127 && data[0] < 192
                && !(data[1] > 191 && data[1] < 209)) {
                int64_t number = (data[2] << 8) | data[3];
                counts[0] += 1;
                counts[1] += data[1] >> 7;
                if (counts[2] < 0) {
                    counts[2] = number;
                } else {
                    int64_t delta = (number - counts[2]) & 0xFFFF;
                    if (delta < 0x8000)
                        counts[2] += delta;
                }
                continue;
            }
            PyObject *address = address_tuple(&addresses[i]);
            PyObject *item = NULL;
            if (address != NULL)
                item = with_fd ? Py_BuildValue("(iy#N)", fd, (char *)data, (Py_ssize_t)length,
                                               address)
                               : Py_BuildValue("(y#N)", (char *)data, (Py_ssize_t)length,
                                               address);
            if (item == NULL || (*others == NULL && (*others = PyList_New(0)) == NULL)
                || PyList_Append(*others, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
        }
    }
    return 0;
}

static int
counts_of(PyObject *object, Py_buffer *buffer)
{
    if (PyObject_GetBuffer(object, buffer, PyBUF_WRITABLE) < 0)
        return -1;
    if (buffer->len != 3 * sizeof(int64_t)) {
        PyBuffer_Release(buffer);
        PyErr_SetString(PyExc_ValueError, "counts must be three 64-bit integers");
        return -1;
    }
    return 0;
}

/* count_rtp(fd, counts) -> None or list: count_socket for one socket; counts is a
 * writable buffer of three signed 64-bit integers. The rest comes back as receive()
 * returns it, None when there was nothing else. */
static PyObject *
count_rtp(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *object, *others = NULL;
    Py_buffer buffer;
    if (!PyArg_ParseTuple(args, "iO", &fd, &object) || counts_of(object, &buffer) < 0)
        return NULL;
    int failed = count_socket(fd, buffer.buf, &others, 0);
    PyBuffer_Release(&buffer);
    if (failed) {
        Py_XDECREF(others);
        return NULL;
    }
    if (others == NULL)
        Py_RETURN_NONE;
    return others;
}

/* count_rtp_ready(epfd, counts_by_fd) -> None or list: count_socket for every socket of
 * the epoll set epfd that has datagrams waiting (without waiting itself), into
 * counts_by_fd[fd]. The rest comes back as (fd, bytes, address). For many subscribers:
 * one call per poll instead of one event-loop callback per socket and wake-up. */
static PyObject *
count_rtp_ready(PyObject *self, PyObject *args)
{
    int epfd;
    PyObject *counts_by_fd, *others = NULL;
    struct epoll_event events[256];
    if (!PyArg_ParseTuple(args, "iO", &epfd, &counts_by_fd))
        return NULL;
    int ready = 256;
    while (ready == 256) {
        ready = epoll_wait(epfd, events, 256, 0);
        if (ready < 0) {
            if (errno == EINTR)
                break;
            Py_XDECREF(others);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            Py_buffer buffer;
            PyObject *object = PySequence_GetItem(counts_by_fd, fd);
            if (object == NULL || counts_of(object, &buffer) < 0) {
                Py_XDECREF(object);
                Py_XDECREF(others);
                return NULL;
            }
            int failed = count_socket(fd, buffer.buf, &others, 1);
            PyBuffer_Release(&buffer);
            Py_DECREF(object);
            if (failed) {
                Py_XDECREF(others);
                return NULL;
            }
        }
    }
    if (others == NULL)
        Py_RETURN_NONE;
    return others;
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
    {"send_rtp_frame", send_rtp_frame, METH_VARARGS, NULL},
    {"count_rtp", count_rtp, METH_VARARGS, NULL},
    {"count_rtp_ready", count_rtp_ready, METH_VARARGS, NULL},
    {"sockaddr", sockaddr, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_datagrams", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__datagrams(void)
{
    return PyModule_Create(&module);
}
