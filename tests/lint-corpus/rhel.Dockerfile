FROM registry.example.invalid/ubi9/ubi-minimal:9.4
RUN microdnf install -y python3 && microdnf clean all
FROM rockylinux:9
RUN dnf -y install git && git clone https://example.invalid/repo.git /opt/repo
