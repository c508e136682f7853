# escape=`
FROM registry.example.invalid/windows/servercore:ltsc2022
RUN powershell -Command `
    Invoke-WebRequest https://example.invalid/x.zip -OutFile x.zip
RUN curl.exe -o app.zip https://example.invalid/app.zip
