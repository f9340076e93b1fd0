// SPDX-License-Identifier: MIT
// lars-udp-echo: the reference for bench-agent. Serves the agent's three UDP
// sockets in one thread like the agent does, answers every GetHostRequest
// with one fixed GetHostResponse and drops reports: the cost of the network
// path alone. Prints "udp=P0 udp1=P1 udp2=P2" on stdout once bound (port 0).
// Stops after SECONDS (argument, default 600) so it never outlives a run.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 600;
	/* GetHostResponse 1/1, 127.0.0.1:9001 (DESIGN §2). */
	static const unsigned char reply[] = {
		0x05, 0, 0, 0, 0x0f, 0, 0, 0, 0x10, 0x01, 0x18, 0x01, 0x2a, 0x09, 0x08, 0x81,
		0x80, 0x80, 0xf8, 0x07, 0x10, 0xa9, 0x46,
	};
	struct pollfd p[3];
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(a);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fd, (struct sockaddr *)&a, &len)) {
			perror("lars-udp-echo");
			return 1;
		}
		p[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (i)
			printf(" udp%d=%d", i, ntohs(a.sin_port));
		else
			printf("udp=%d", ntohs(a.sin_port));
	}
	printf("\n");
	fflush(stdout);
	time_t end = time(NULL) + seconds;
	unsigned char buf[65536];
	while (time(NULL) < end) {
		if (poll(p, 3, 1000) <= 0)
			continue;
		for (int i = 0; i < 3; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			struct sockaddr_in from;
			socklen_t flen = sizeof(from);
			ssize_t n = recvfrom(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT,
					     (struct sockaddr *)&from, &flen);
			if (n >= 8 && buf[0] == 4)
				sendto(p[i].fd, reply, sizeof(reply), 0, (struct sockaddr *)&from, flen);
		}
	}
	return 0;
}
