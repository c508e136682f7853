FROM gradle:8.10-jdk21 AS build
WORKDIR /src
COPY . .
RUN gradle build --no-daemon

FROM eclipse-temurin:21-jre
COPY --from=build /src/build/libs/app.jar /app.jar
